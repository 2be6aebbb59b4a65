// The campaigns list: filters kept in the URL, one page fetched from the API, and rows kept
// current by live `status` / `totals` events and by the answers of row actions.

import { useCallback, useEffect, useState } from "react";
import { useLive, type CampaignTotals } from "../live";
import { parseRoute } from "../router";
import type { Campaign, Page } from "../types";
import { useFetched } from "../useFetched";
import { apiPath, filtersFromSearch, filtersToSearch, PAGE_SIZE, type ListFilters } from "./query";

export interface CampaignList {
  filters: ListFilters;
  /** change filters; any change but an explicit `page` goes back to page 1 */
  update: (patch: Partial<ListFilters>) => void;
  items: Campaign[];
  total: number;
  /** nothing fetched yet */
  initial: boolean;
  loading: boolean;
  error: string | null;
  dismissError: () => void;
  reload: () => void;
  /** a campaign as the server answered it (an action, a live event) */
  applyCampaign: (campaign: Campaign) => void;
  /** new counts for a row; `sent` is left as it was when not given (a launch answer has none) */
  applyTotals: (totals: Counts) => void;
}

/** A campaign's counts: the `totals` live event's, or the ones a launch answer gives. */
export type Counts = Omit<CampaignTotals, "sent"> & { sent?: number };

/**
 * A newer answer for a row: its fields, but not counts (a launch answer's `entered` is the
 * launch's alone, and a status event's counts are never the live ones).
 */
export function merged(row: Campaign, update: Campaign): Campaign {
  if (Date.parse(update.updated_at) < Date.parse(row.updated_at)) return row; // an older event arriving late
  const { document: _document, entered: _entered, converted: _converted, sent: _sent, ...fields } = update;
  return { ...row, ...fields };
}

/** The page with one campaign's new counts (a page not holding it comes back unchanged). */
export function withTotals(page: Page<Campaign> | null, t: Counts): Page<Campaign> | null {
  return page && {
    ...page,
    items: page.items.map((row) => (row.id === t.campaign_id
      ? { ...row, entered: t.entered, converted: t.converted, ...(t.sent !== undefined ? { sent: t.sent } : {}) }
      : row)),
  };
}

function useUrlFilters(): [ListFilters, (patch: Partial<ListFilters>) => void] {
  const [filters, setFilters] = useState(() => filtersFromSearch(location.search));
  useEffect(() => {
    const search = filtersToSearch(filters);
    if (search !== location.search) history.replaceState(history.state, "", location.pathname + search + location.hash);
  }, [filters]);
  useEffect(() => {
    // back / forward, or a link to the list while on it
    const onPop = () => parseRoute(location.pathname).page === "campaigns" && setFilters(filtersFromSearch(location.search));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const update = useCallback((patch: Partial<ListFilters>) => setFilters((f) => ({ ...f, page: 1, ...patch })), []);
  return [filters, update];
}

export function useCampaignList(): CampaignList {
  const [filters, update] = useUrlFilters();
  const { data: page, setData: setPage, loading, error, setError, reload } = useFetched<Page<Campaign>>(
    apiPath(filters), // the path says everything about `filters`: no other dependency
    (answer) => {
      const lastPage = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
      if (answer.items.length === 0 && filters.page > lastPage) update({ page: lastPage }); // emptied by deletes
    },
  );

  const applyCampaign = useCallback((campaign: Campaign) => {
    setPage((p) => p && { ...p, items: p.items.map((row) => (row.id === campaign.id ? merged(row, campaign) : row)) });
  }, []);
  const applyTotals = useCallback((t: Counts) => setPage((p) => withTotals(p, t)), []);
  useLive({ campaigns: true }, { status: applyCampaign, totals: applyTotals });

  return {
    filters,
    update,
    items: page?.items ?? [],
    total: page?.total ?? 0,
    initial: page === null,
    loading,
    error,
    dismissError: useCallback(() => setError(null), []),
    reload,
    applyCampaign,
    applyTotals,
  };
}
