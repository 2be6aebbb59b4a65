// The campaigns list: filters kept in the URL, one page fetched from the API, and rows kept
// current by live `status` / `totals` events and by the answers of row actions.

import { useCallback, useEffect, useRef, useState } from "react";
import { api, errorText } from "../api";
import { useLive } from "../live";
import { parseRoute } from "../router";
import type { Campaign, Page } from "../types";
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
  applyTotals: (totals: { campaign_id: number; entered: number; converted: number }) => void;
}

/** A newer answer for a row: its fields, but not counts (a launch answer's `entered` is the launch's alone). */
function merged(row: Campaign, update: Campaign): Campaign {
  if (Date.parse(update.updated_at) < Date.parse(row.updated_at)) return row; // an older event arriving late
  const { document: _document, entered: _entered, converted: _converted, ...fields } = update;
  return { ...row, ...fields };
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
  const [page, setPage] = useState<Page<Campaign> | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [reloads, setReloads] = useState(0);
  const latest = useRef(0);
  const path = apiPath(filters);

  useEffect(() => {
    const call = ++latest.current; // answers to older calls are dropped
    setLoading(true);
    api.get<Page<Campaign>>(path).then(
      (answer) => {
        if (call !== latest.current) return;
        const lastPage = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
        if (answer.items.length === 0 && filters.page > lastPage) update({ page: lastPage }); // emptied by deletes
        setPage(answer);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (call !== latest.current) return;
        setError(errorText(e));
        setLoading(false);
      },
    );
  }, [path, reloads]); // `path` says everything about `filters`

  const applyCampaign = useCallback((campaign: Campaign) => {
    setPage((p) => p && { ...p, items: p.items.map((row) => (row.id === campaign.id ? merged(row, campaign) : row)) });
  }, []);
  const applyTotals = useCallback((t: { campaign_id: number; entered: number; converted: number }) => {
    setPage((p) => p && {
      ...p,
      items: p.items.map((row) => (row.id === t.campaign_id ? { ...row, entered: t.entered, converted: t.converted } : row)),
    });
  }, []);
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
    reload: useCallback(() => setReloads((n) => n + 1), []),
    applyCampaign,
    applyTotals,
  };
}
