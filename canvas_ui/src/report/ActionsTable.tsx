// The action tracking table: every step a customer took in the campaign, newest first, with
// filters, a column chooser (remembered in this browser), keyset pages and a CSV download.

import { useState } from "react";
import { DebouncedInput } from "../campaigns/DebouncedInput";
import {
  COLUMNS, csvPath, hasFilters, loadColumns, MESSAGE_STATUSES, NO_FILTERS, PAGE_SIZE, saveColumns, type ColumnKey,
} from "./actionsQuery";
import { count, distinctNames, statusWords } from "./format";
import type { Action, ReportNode } from "./types";
import { useActions } from "./useActions";

function Cell({ action, column }: { action: Action; column: ColumnKey }) {
  const value = action[column];
  if (column === "at") {
    const when = new Date(action.at);
    return <time dateTime={action.at} title={action.at}>{Number.isNaN(when.getTime()) ? action.at : when.toLocaleString()}</time>;
  }
  if (column === "message_status" && value) {
    return <span className={`msg-status msg-${String(value)}`} data-status={String(value)}>{statusWords(String(value))}</span>;
  }
  if (value === null || value === undefined || value === "") return <span className="muted">–</span>;
  return <>{String(value)}</>;
}

function ColumnChooser(props: { columns: ColumnKey[]; onChange: (columns: ColumnKey[]) => void }) {
  const toggle = (key: ColumnKey, on: boolean) =>
    props.onChange(COLUMNS.map((c) => c.key).filter((k) => (k === key ? on : props.columns.includes(k))));
  return (
    <details className="column-chooser" data-testid="columns-menu">
      <summary>Columns ({props.columns.length})</summary>
      <div className="menu" role="group" aria-label="Columns to show">
        {COLUMNS.map((c) => {
          const checked = props.columns.includes(c.key);
          return (
            <label key={c.key}>
              <input type="checkbox" checked={checked} data-column={c.key}
                     disabled={checked && props.columns.length === 1} // one column at least
                     onChange={(e) => toggle(c.key, e.target.checked)} />
              {c.label}
            </label>
          );
        })}
      </div>
    </details>
  );
}

export function ActionsTable(props: { campaignId: number; nodes: ReportNode[]; liveTick: number }) {
  const actions = useActions(props.campaignId, props.liveTick);
  const [columns, setColumnsState] = useState<ColumnKey[]>(loadColumns);
  const setColumns = (next: ColumnKey[]) => {
    setColumnsState(next);
    saveColumns(next);
  };
  const { filters, setFilters, page } = actions;
  const node = props.nodes.find((n) => n.id === filters.node);
  const ports = [...new Set((node ? [node] : props.nodes).flatMap((n) => Object.keys(n.left ?? {})))].sort();
  if (filters.port && !ports.includes(filters.port)) ports.unshift(filters.port);
  const items = page?.items ?? [];
  const first = actions.index * PAGE_SIZE + 1;
  const shown = items.length ? `${count(first)}–${count(first + items.length - 1)} of ${count(page?.total)}` : `${count(page?.total)} steps`;
  const labels = Object.fromEntries(COLUMNS.map((c) => [c.key, c.label]));
  const names = distinctNames(props.nodes);

  return (
    <section className="report-section" aria-labelledby="report-actions-title">
      <div className="section-head">
        <h2 id="report-actions-title">Action tracking</h2>
        <span className="spacer" />
        <ColumnChooser columns={columns} onChange={setColumns} />
        <a className="button-link" data-testid="actions-csv" href={csvPath(props.campaignId, filters, columns)} download
           title="Every matching step (all pages), with the chosen columns">
          Download CSV
        </a>
      </div>
      <div className="actions-filters" data-testid="actions-filters">
        <label>
          <span>Step</span>
          <select value={filters.node} data-testid="actions-node" onChange={(e) => setFilters({ node: e.target.value, port: "" })}>
            <option value="">All steps</option>
            {props.nodes.map((n, i) => (
              <option key={n.id} value={n.id}>{names[i]}</option>
            ))}
          </select>
        </label>
        <label>
          <span>Port</span>
          <select value={filters.port} data-testid="actions-port" onChange={(e) => setFilters({ port: e.target.value })}>
            <option value="">Any port</option>
            {ports.map((p) => <option key={p} value={p}>{p}</option>)}
          </select>
        </label>
        <label>
          <span>Message</span>
          <select value={filters.status} data-testid="actions-status" onChange={(e) => setFilters({ status: e.target.value })}>
            <option value="">Any status</option>
            {MESSAGE_STATUSES.map((s) => <option key={s.value} value={s.value}>{s.label}</option>)}
          </select>
        </label>
        <label>
          <span>Profile</span>
          <DebouncedInput type="text" className="profile-input" value={filters.profile} onChange={(profile) => setFilters({ profile })}
                          placeholder="id, email, phone or external id" label="Filter by profile" testId="actions-profile" />
        </label>
        <label>
          <span>Since</span>
          <input type="datetime-local" value={filters.since} data-testid="actions-since" onChange={(e) => setFilters({ since: e.target.value })} />
        </label>
        <label>
          <span>Until</span>
          <input type="datetime-local" value={filters.until} data-testid="actions-until" onChange={(e) => setFilters({ until: e.target.value })} />
        </label>
        {hasFilters(filters) && (
          <button type="button" className="link" onClick={() => setFilters(NO_FILTERS)}>Clear filters</button>
        )}
      </div>
      {actions.error && (
        <div className="banner error report-banner" role="alert" data-testid="actions-error">
          Could not load the steps: {actions.error}{" "}
          <button type="button" className="link" onClick={actions.reload}>Retry</button>
        </div>
      )}
      <div className="report-table-scroll">
        <table className={`report-table${actions.loading ? " is-loading" : ""}`} data-testid="actions-table" aria-busy={actions.loading}>
          <thead>
            <tr>{columns.map((c) => <th key={c} data-column={c}>{labels[c]}</th>)}</tr>
          </thead>
          <tbody>
            {items.map((action) => (
              <tr key={action.id} data-testid="action-row" data-action-id={action.id}>
                {columns.map((c) => <td key={c} data-column={c}><Cell action={action} column={c} /></td>)}
              </tr>
            ))}
            {items.length === 0 && !actions.loading && (
              <tr className="empty-row">
                <td colSpan={columns.length} className="muted">
                  {hasFilters(filters) ? "No steps match these filters." : "No steps yet."}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages of steps">
        <span data-testid="actions-total">{shown}</span>
        <button type="button" data-testid="actions-newer" disabled={actions.index === 0 || actions.loading} onClick={actions.newer}>
          ‹ Newer
        </button>
        <button type="button" data-testid="actions-older" disabled={page?.next_before == null || actions.loading} onClick={actions.older}>
          Older ›
        </button>
      </nav>
    </section>
  );
}
