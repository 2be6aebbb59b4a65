// "Campaigns currently sending" (/live): the campaigns matching the filters (active ones by
// default) with their counts moving as customers go through them.

import "../campaigns/campaigns.css";
import "./live.css";
import { StatusBadge, Tags } from "../campaigns/CampaignRow";
import { DebouncedInput } from "../campaigns/DebouncedInput";
import { conversionRate, formatCount } from "../campaigns/format";
import { StatusFilter } from "../campaigns/StatusFilter";
import { Link } from "../router";
import type { Campaign } from "../types";
import { DEFAULT_STATUSES, LIMIT, type LiveFilters } from "./query";
import { useLiveCampaigns } from "./useLiveCampaigns";

function LiveRow({ campaign: c, activeTag, onTag }: { campaign: Campaign; activeTag: string; onTag: (tag: string) => void }) {
  return (
    <tr data-testid="live-row" data-campaign-id={c.id}>
      <td className="name-cell">
        <div className="name" data-testid="live-name">
          <Link to={`/campaigns/${c.id}/report`} title={`Report of ${c.name}`}>{c.name}</Link>
        </div>
      </td>
      <td><StatusBadge campaign={c} /></td>
      <td><Tags tags={c.tags ?? []} active={activeTag} onTag={onTag} /></td>
      <td className="num"><span data-testid="live-entered">{formatCount(c.entered)}</span></td>
      <td className="num"><span data-testid="live-sent">{formatCount(c.sent)}</span></td>
      <td className="num"><span data-testid="live-converted">{formatCount(c.converted)}</span></td>
      <td className="num"><span data-testid="live-rate">{conversionRate(c.entered, c.converted) ?? "–"}</span></td>
    </tr>
  );
}

function LiveFiltersBar({ filters, onChange }: { filters: LiveFilters; onChange: (patch: Partial<LiveFilters>) => void }) {
  const changed = filters.q || filters.tag || filters.statuses.join() !== DEFAULT_STATUSES.join();
  return (
    <div className="filters">
      <DebouncedInput className="search" value={filters.q} onChange={(q) => onChange({ q })}
                      placeholder="Search by name…" label="Search campaigns by name" testId="live-search" />
      <StatusFilter value={filters.statuses} onChange={(statuses) => onChange({ statuses })} />
      <DebouncedInput type="text" className="tag-input" value={filters.tag} onChange={(tag) => onChange({ tag })}
                      placeholder="Tag" label="Filter by tag" testId="live-tag-filter" />
      {changed && (
        <button type="button" className="link clear" onClick={() => onChange({ q: "", statuses: DEFAULT_STATUSES, tag: "" })}>
          Reset filters
        </button>
      )}
    </div>
  );
}

export default function LivePage() {
  const live = useLiveCampaigns();
  const { filters, update, items } = live;
  return (
    <main className="page live-page" data-testid="live-page">
      <header className="campaigns-header">
        <h1>Campaigns currently sending</h1>
        <span className="live-dot" aria-hidden="true" />
        <span className="muted">updated live</span>
      </header>
      {live.error && (
        <div className="banner error live-banner" role="alert" data-testid="live-error">
          Could not load campaigns: {live.error}{" "}
          <button type="button" className="link" onClick={live.reload}>Retry</button>
        </div>
      )}
      <LiveFiltersBar filters={filters} onChange={update} />
      {live.initial && live.loading && <div className="loading">Loading campaigns…</div>}
      {!live.initial && (
        <div className="table-scroll">
          <table className={`campaigns-table live-table${live.loading ? " is-loading" : ""}`} data-testid="live-table" aria-busy={live.loading}>
            <thead>
              <tr>
                <th className="name-col">Name</th>
                <th>Status</th>
                <th>Tags</th>
                <th className="num">Entered</th>
                <th className="num">Sent</th>
                <th className="num">Converted</th>
                <th className="num">Conversion</th>
              </tr>
            </thead>
            <tbody>
              {items.map((c) => <LiveRow key={c.id} campaign={c} activeTag={filters.tag} onTag={(tag) => update({ tag })} />)}
              {items.length === 0 && !live.loading && (
                <tr className="empty-row">
                  <td colSpan={7} className="muted" data-testid="live-empty">No campaigns match these filters.</td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      <div className="pager">
        <span data-testid="live-total">
          {live.total > items.length ? `The ${formatCount(items.length)} most recently updated of ${formatCount(live.total)}` : `${formatCount(live.total)} campaign${live.total === 1 ? "" : "s"}`}
        </span>
      </div>
      {live.total > LIMIT && <p className="muted">Narrow the filters to see the others.</p>}
    </main>
  );
}
