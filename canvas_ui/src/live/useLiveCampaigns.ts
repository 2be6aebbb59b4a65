// The campaigns the realtime page shows: fetched for the filters, their counts moved by the
// `campaigns` room's `totals` events, and the set kept right by its `status` events (a
// campaign leaving the filter goes at once; one entering it comes with a refetch).

import { useCallback, useEffect, useRef, useState } from "react";
import { merged, withTotals } from "../campaigns/useCampaignList";
import { useLive, type CampaignTotals } from "../live";
import type { Campaign, Page } from "../types";
import { useFetched } from "../useFetched";
import { liveApiPath, liveFiltersFromSearch, liveFiltersToSearch, statusMatches, type LiveFilters } from "./query";

const REFETCH_DELAY_MS = 300;

export interface LiveCampaigns {
  filters: LiveFilters;
  update: (patch: Partial<LiveFilters>) => void;
  items: Campaign[];
  total: number;
  initial: boolean;
  loading: boolean;
  error: string | null;
  reload: () => void;
}

export function useLiveCampaigns(): LiveCampaigns {
  const [filters, setFilters] = useState(() => liveFiltersFromSearch(location.search));
  const refetchTimer = useRef<number | null>(null);

  useEffect(() => {
    const search = liveFiltersToSearch(filters);
    if (search !== location.search) history.replaceState(history.state, "", location.pathname + search + location.hash);
  }, [filters]);

  const { data: page, setData: setPage, loading, error, reload } = useFetched<Page<Campaign>>(liveApiPath(filters));

  /** several status events in a row (a bulk launch) make one refetch */
  const refetchSoon = useCallback(() => {
    if (refetchTimer.current !== null) return;
    refetchTimer.current = window.setTimeout(() => {
      refetchTimer.current = null;
      reload();
    }, REFETCH_DELAY_MS);
  }, [reload]);
  useEffect(() => () => {
    if (refetchTimer.current !== null) window.clearTimeout(refetchTimer.current);
  }, []);

  const shown = useRef({ filters, page });
  shown.current = { filters, page };
  const onStatus = useCallback((campaign: Campaign) => {
    const matches = statusMatches(shown.current.filters, campaign.status);
    const known = shown.current.page?.items.some((row) => row.id === campaign.id) ?? false;
    if (!known) {
      // not shown yet but now in the filter: the server says whether its name and tags match too
      if (matches) refetchSoon();
      return;
    }
    setPage((p) => {
      if (!p || !p.items.some((row) => row.id === campaign.id)) return p;
      if (!matches) return { ...p, items: p.items.filter((row) => row.id !== campaign.id), total: Math.max(0, p.total - 1) };
      return { ...p, items: p.items.map((row) => (row.id === campaign.id ? merged(row, campaign) : row)) };
    });
  }, [refetchSoon]);
  const onTotals = useCallback((totals: CampaignTotals) => setPage((p) => withTotals(p, totals)), []);
  useLive({ campaigns: true }, { status: onStatus, totals: onTotals, joined: refetchSoon });

  return {
    filters,
    update: useCallback((patch: Partial<LiveFilters>) => setFilters((f) => ({ ...f, ...patch })), []),
    items: page?.items ?? [],
    total: page?.total ?? 0,
    initial: page === null,
    loading,
    error,
    reload,
  };
}
