// One page of the action tracking table, newest first, paged by keyset: Older pushes the
// page's `next_before` on a stack of cursors, Newer pops it, and any filter change starts over.

import { useCallback, useEffect, useState } from "react";
import { useFetched } from "../useFetched";
import { actionsPath, NO_FILTERS, type ActionFilters } from "./actionsQuery";
import type { ActionsPage } from "./types";

export interface Actions {
  filters: ActionFilters;
  setFilters: (patch: Partial<ActionFilters>) => void;
  page: ActionsPage | null;
  /** the shown page's place: 0 for the newest (it changes with the rows, not before them) */
  index: number;
  loading: boolean;
  error: string | null;
  older: () => void;
  newer: () => void;
  reload: () => void;
}

export function useActions(campaignId: number, liveTick: number): Actions {
  const [filters, setFiltersState] = useState<ActionFilters>(NO_FILTERS);
  const [cursors, setCursors] = useState<number[]>([]);
  const [shown, setShown] = useState<{ page: ActionsPage; index: number } | null>(null);
  const before = cursors.length ? cursors[cursors.length - 1] : null;
  const index = cursors.length;
  // the page kept with the index it was asked for, so the two change together
  const { loading, error, reload } = useFetched<ActionsPage>(actionsPath(campaignId, filters, before), (answer) =>
    setShown({ page: answer, index }));

  // new steps show on the newest page as they happen; an older page stays as it was
  const onNewest = cursors.length === 0;
  useEffect(() => {
    if (liveTick > 0 && onNewest) reload();
  }, [liveTick]); // only a live tick re-reads here

  const setFilters = useCallback((patch: Partial<ActionFilters>) => {
    setFiltersState((f) => ({ ...f, ...patch }));
    setCursors([]);
  }, []);
  const next = shown?.page.next_before ?? null;
  return {
    filters,
    setFilters,
    page: shown?.page ?? null,
    index: shown?.index ?? 0,
    loading,
    error,
    older: useCallback(() => next !== null && setCursors((c) => [...c, next]), [next]),
    newer: useCallback(() => setCursors((c) => c.slice(0, -1)), []),
    reload,
  };
}
