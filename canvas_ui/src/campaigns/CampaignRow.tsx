// One campaign in the table. Everything user-written (name, description, tags, reasons) is
// plain JSX text.

import { Link } from "../router";
import type { Campaign } from "../types";
import { conversionRate, formatCount, formatTime } from "./format";
import type { RowAction } from "./lifecycle";
import { RowActions } from "./RowActions";

export function StatusBadge({ campaign }: { campaign: Campaign }) {
  const title = campaign.status_reason
    ? campaign.status_reason
    : campaign.next_run_at ? `Next run ${new Date(campaign.next_run_at).toLocaleString()}` : undefined;
  return (
    <span className={`status status-${campaign.status}${campaign.status_reason ? " has-reason" : ""}`} title={title} data-testid="campaign-status">
      {campaign.status}
    </span>
  );
}

function Time({ iso, now }: { iso: string | null; now: Date }) {
  return iso ? <time dateTime={iso} title={iso}>{formatTime(iso, now)}</time> : <span className="muted">—</span>;
}

/** A campaign's tags as buttons: a click filters by the tag, a click on the active one clears it. */
export function Tags(props: { tags: string[]; active: string; onTag: (tag: string) => void }) {
  return (
    <div className="tags">
      {props.tags.map((tag) => (
        <button
          key={tag}
          type="button"
          className={`tag${tag === props.active ? " active" : ""}`}
          title={`Show campaigns tagged “${tag}”`}
          onClick={() => props.onTag(tag === props.active ? "" : tag)}
        >
          {tag}
        </button>
      ))}
    </div>
  );
}

export function CampaignRow(props: {
  campaign: Campaign;
  now: Date;
  canEdit: boolean;
  busy: RowAction | undefined;
  highlight: boolean;
  activeTag: string;
  onTag: (tag: string) => void;
  onAction: (action: RowAction, campaign: Campaign) => void;
}) {
  const { campaign: c, now } = props;
  const rate = conversionRate(c.entered, c.converted);
  return (
    <tr data-testid="campaign-row" data-campaign-id={c.id} className={props.highlight ? "highlight" : undefined}>
      <td className="name-cell">
        <div className="name" data-testid="campaign-name">
          <Link to={`/campaigns/${c.id}`} title={c.name}>{c.name}</Link>
        </div>
        {c.description && <div className="description" title={c.description}>{c.description}</div>}
      </td>
      <td><StatusBadge campaign={c} /></td>
      <td><Tags tags={c.tags ?? []} active={props.activeTag} onTag={props.onTag} /></td>
      <td className="num"><span data-testid="campaign-entered">{formatCount(c.entered)}</span></td>
      <td className="num">
        <span data-testid="campaign-converted">{formatCount(c.converted)}</span>
        {rate && <span className="rate" title="of those who entered">{rate}</span>}
      </td>
      <td className="time"><Time iso={c.created_at} now={now} /></td>
      <td className="time"><Time iso={c.updated_at} now={now} /></td>
      <td className="actions-cell">
        <RowActions campaign={c} canEdit={props.canEdit} busy={props.busy} onAction={props.onAction} />
      </td>
    </tr>
  );
}
