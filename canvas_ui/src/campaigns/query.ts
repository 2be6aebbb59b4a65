// The list's filters and page, as they live in the URL query string and in the API call.

import type { CampaignStatus } from "../types";

export type SortKey = "updated" | "created" | "name";

export interface ListFilters {
  q: string;
  statuses: CampaignStatus[];
  tag: string;
  sort: SortKey;
  /** 1-based */
  page: number;
}

export const PAGE_SIZE = 25;

export const STATUSES: CampaignStatus[] = ["draft", "scheduled", "active", "paused", "suspended", "stopped", "finished"];

export const SORTS: Array<{ key: SortKey; label: string }> = [
  { key: "updated", label: "Last updated" },
  { key: "created", label: "Newest first" },
  { key: "name", label: "Name (A–Z)" },
];

export const DEFAULT_FILTERS: ListFilters = { q: "", statuses: [], tag: "", sort: "updated", page: 1 };

const isSort = (s: string): s is SortKey => SORTS.some((o) => o.key === s);

export function filtersFromSearch(search: string): ListFilters {
  const params = new URLSearchParams(search);
  const wanted = (params.get("status") ?? "").split(",").map((s) => s.trim());
  const sort = params.get("sort") ?? "";
  const page = Number.parseInt(params.get("page") ?? "", 10);
  return {
    q: params.get("q") ?? "",
    statuses: STATUSES.filter((s) => wanted.includes(s)),
    tag: params.get("tag") ?? "",
    sort: isSort(sort) ? sort : DEFAULT_FILTERS.sort,
    page: Number.isFinite(page) && page > 1 ? page : 1,
  };
}

/** Only what differs from the defaults, so a plain list keeps a plain URL. */
export function filtersToSearch(filters: ListFilters): string {
  const params = new URLSearchParams();
  if (filters.q) params.set("q", filters.q);
  if (filters.statuses.length) params.set("status", STATUSES.filter((s) => filters.statuses.includes(s)).join(","));
  if (filters.tag) params.set("tag", filters.tag);
  if (filters.sort !== DEFAULT_FILTERS.sort) params.set("sort", filters.sort);
  if (filters.page > 1) params.set("page", String(filters.page));
  const text = params.toString();
  return text ? `?${text}` : "";
}

export function apiPath(filters: ListFilters): string {
  const params = new URLSearchParams({
    sort: filters.sort,
    limit: String(PAGE_SIZE),
    offset: String((filters.page - 1) * PAGE_SIZE),
  });
  if (filters.q.trim()) params.set("q", filters.q.trim());
  if (filters.statuses.length) params.set("status", filters.statuses.join(","));
  if (filters.tag.trim()) params.set("tag", filters.tag.trim());
  return `/api/campaigns?${params}`;
}

export function hasFilters(filters: ListFilters): boolean {
  return Boolean(filters.q.trim() || filters.statuses.length || filters.tag.trim());
}

