// The table itself: a sticky header over one row per campaign.

import type { Campaign } from "../types";
import { CampaignRow } from "./CampaignRow";
import type { RowAction } from "./lifecycle";

export function CampaignTable(props: {
  items: Campaign[];
  loading: boolean;
  canEdit: boolean;
  busy: Record<number, RowAction>;
  highlight: number | null;
  activeTag: string;
  onTag: (tag: string) => void;
  onAction: (action: RowAction, campaign: Campaign) => void;
}) {
  const now = new Date();
  return (
    <table className={`campaigns-table${props.loading ? " is-loading" : ""}`} data-testid="campaigns-table" aria-busy={props.loading}>
      <thead>
        <tr>
          <th className="name-col">Name</th>
          <th>Status</th>
          <th>Tags</th>
          <th className="num">Entered</th>
          <th className="num">Converted</th>
          <th>Created</th>
          <th>Updated</th>
          <th className="actions-col"><span className="visually-hidden">Actions</span></th>
        </tr>
      </thead>
      <tbody>
        {props.items.map((campaign) => (
          <CampaignRow
            key={campaign.id}
            campaign={campaign}
            now={now}
            canEdit={props.canEdit}
            busy={props.busy[campaign.id]}
            highlight={props.highlight === campaign.id}
            activeTag={props.activeTag}
            onTag={props.onTag}
            onAction={props.onAction}
          />
        ))}
      </tbody>
    </table>
  );
}
