// The realtime page's filters as they live in its URL (/live?status=active&q=&tag=) and in
// the campaigns API call. No `status` in the URL means the default: active campaigns.

import { STATUSES } from "../campaigns/query";
import type { CampaignStatus } from "../types";

export interface LiveFilters {
  q: string;
  /** empty: every status */
  statuses: CampaignStatus[];
  tag: string;
}

export const DEFAULT_STATUSES: CampaignStatus[] = ["active"];
export const LIMIT = 100;

export function liveFiltersFromSearch(search: string): LiveFilters {
  const params = new URLSearchParams(search);
  const raw = params.get("status");
  const wanted = (raw ?? "").split(",").map((s) => s.trim());
  return {
    q: params.get("q") ?? "",
    statuses: raw === null ? DEFAULT_STATUSES : STATUSES.filter((s) => wanted.includes(s)),
    tag: params.get("tag") ?? "",
  };
}

const sameStatuses = (a: CampaignStatus[], b: CampaignStatus[]) => a.length === b.length && a.every((s) => b.includes(s));

export function liveFiltersToSearch(filters: LiveFilters): string {
  const params = new URLSearchParams();
  if (filters.q) params.set("q", filters.q);
  if (!sameStatuses(filters.statuses, DEFAULT_STATUSES)) params.set("status", filters.statuses.join(","));
  if (filters.tag) params.set("tag", filters.tag);
  const text = params.toString();
  return text ? `?${text}` : "";
}

export function liveApiPath(filters: LiveFilters): string {
  const params = new URLSearchParams({ sort: "updated", limit: String(LIMIT) });
  if (filters.statuses.length) params.set("status", filters.statuses.join(","));
  if (filters.q.trim()) params.set("q", filters.q.trim());
  if (filters.tag.trim()) params.set("tag", filters.tag.trim());
  return `/api/campaigns?${params}`;
}

/** Whether a campaign in this status belongs in the table (name and tag are the server's to judge). */
export const statusMatches = (filters: LiveFilters, status: CampaignStatus): boolean =>
  filters.statuses.length === 0 || filters.statuses.includes(status);
