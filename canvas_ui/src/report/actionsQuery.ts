// The action tracking table's columns (the choice kept in localStorage) and filters, as the
// actions API and the CSV download take them.

import { statusWords } from "./format";

export type ColumnKey =
  | "id" | "at" | "profile_id" | "external_id" | "email" | "phone"
  | "node_id" | "node_label" | "node_type" | "node_type_label" | "port" | "message_status";

/** In the order the server writes them in a CSV. */
export const COLUMNS: Array<{ key: ColumnKey; label: string }> = [
  { key: "id", label: "Step id" },
  { key: "at", label: "Time" },
  { key: "profile_id", label: "Profile id" },
  { key: "external_id", label: "External id" },
  { key: "email", label: "Email" },
  { key: "phone", label: "Phone" },
  { key: "node_id", label: "Step id (for developers)" },
  { key: "node_label", label: "Step" },
  { key: "node_type", label: "Step type key (for developers)" },
  { key: "node_type_label", label: "Step type" },
  { key: "port", label: "Port" },
  { key: "message_status", label: "Message status" },
];

export const DEFAULT_COLUMNS: ColumnKey[] = ["at", "profile_id", "email", "node_label", "port", "message_status"];

/** What `status` filters (engine/journeys/actions.py STATUSES): where the step's message got to, the
 *  outbox's own states and what providers reported; `none` for steps that wrote no message. */
export const MESSAGE_STATUSES: Array<{ value: string; label: string }> = [
  ...["queued", "sending", "sent", "failed", "uncertain", "processed", "deferred", "delivered", "opened", "clicked",
    "unsubscribed", "bounced", "undelivered", "dropped", "spamreport", "none"].map((s) => ({ value: s, label: statusWords(s) })),
];

export const PAGE_SIZE = 50;
const STORAGE_KEY = "campaign-canvas.report.columns";

export function loadColumns(): ColumnKey[] {
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    if (Array.isArray(stored)) {
      const chosen = COLUMNS.map((c) => c.key).filter((k) => stored.includes(k));
      if (chosen.length) return chosen;
    }
  } catch {
    // unreadable or unavailable storage: the defaults
  }
  return DEFAULT_COLUMNS;
}

export function saveColumns(columns: ColumnKey[]): void {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(columns));
  } catch {
    // private mode, full storage: the choice lasts for this page only
  }
}

export interface ActionFilters {
  node: string;
  port: string;
  status: string;
  profile: string;
  /** `<input type="datetime-local">` values, local time */
  since: string;
  until: string;
}

export const NO_FILTERS: ActionFilters = { node: "", port: "", status: "", profile: "", since: "", until: "" };

export const hasFilters = (f: ActionFilters): boolean => Object.values(f).some((v) => v.trim() !== "");

/** A datetime-local value as an ISO 8601 UTC time, or null when it is no time. */
export function localToIso(value: string): string | null {
  if (!value) return null;
  const when = new Date(value);
  return Number.isNaN(when.getTime()) ? null : when.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function filterParams(filters: ActionFilters): URLSearchParams {
  const params = new URLSearchParams();
  if (filters.node) params.set("node", filters.node);
  if (filters.port) params.set("port", filters.port);
  if (filters.status) params.set("status", filters.status);
  if (filters.profile.trim()) params.set("profile", filters.profile.trim());
  const since = localToIso(filters.since);
  const until = localToIso(filters.until);
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  return params;
}

export function actionsPath(campaignId: number, filters: ActionFilters, before: number | null): string {
  const params = filterParams(filters);
  params.set("limit", String(PAGE_SIZE));
  if (before !== null) params.set("before", String(before));
  return `/api/campaigns/${campaignId}/actions?${params}`;
}

/** Every matching step (not just this page), the chosen columns in the table's order. */
export function csvPath(campaignId: number, filters: ActionFilters, columns: ColumnKey[]): string {
  const params = filterParams(filters);
  params.set("columns", columns.join(","));
  return `/api/campaigns/${campaignId}/report.csv?${params}`;
}
