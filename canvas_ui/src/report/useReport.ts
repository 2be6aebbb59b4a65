// The report of one campaign: fetched once, again when the interval changes, and re-read
// when the campaign's room says its figures moved (at most once every THROTTLE_MS).

import { useCallback, useEffect, useRef, useState } from "react";
import { useLive } from "../live";
import { useFetched } from "../useFetched";
import type { Interval, Report } from "./types";

export const THROTTLE_MS = 2000;

export interface ReportState {
  report: Report | null;
  loading: boolean;
  error: string | null;
  /** the interval asked for; null lets the server choose (hour up to 72 h of data, else day) */
  interval: Interval | null;
  chooseInterval: (interval: Interval) => void;
  reload: () => void;
  /** bumped whenever fresh figures arrived live, for the parts that re-read with them */
  liveTick: number;
}

export function reportPath(campaignId: number, interval: Interval | null): string {
  const params = new URLSearchParams();
  if (interval) params.set("interval", interval);
  const query = params.toString();
  return `/api/campaigns/${campaignId}/report${query ? `?${query}` : ""}`;
}

/** Calls `run` now, or once at the end of the current throttle window: never more often. */
function useThrottled(run: () => void, ms: number): () => void {
  const last = useRef(Date.now()); // the first read is under way as the page opens
  const timer = useRef<number | null>(null);
  const latest = useRef(run);
  latest.current = run;
  useEffect(() => () => {
    if (timer.current !== null) window.clearTimeout(timer.current);
  }, []);
  return useCallback(() => {
    if (timer.current !== null) return; // a trailing call is already planned
    const wait = last.current + ms - Date.now();
    const fire = () => {
      timer.current = null;
      last.current = Date.now();
      latest.current();
    };
    if (wait <= 0) fire();
    else timer.current = window.setTimeout(fire, wait);
  }, [ms]);
}

export function useReport(campaignId: number): ReportState {
  const [interval, setChosen] = useState<Interval | null>(() => {
    const asked = new URLSearchParams(location.search).get("interval");
    return asked === "hour" || asked === "day" ? asked : null;
  });
  const [liveTick, setLiveTick] = useState(0);
  const { data: report, loading, error, reload } = useFetched<Report>(reportPath(campaignId, interval));

  const liveReload = useThrottled(() => {
    reload();
    setLiveTick((n) => n + 1);
  }, THROTTLE_MS);
  useLive({ campaign_id: campaignId }, { stats: liveReload, status: liveReload, joined: liveReload });

  const chooseInterval = useCallback((next: Interval) => {
    setChosen(next);
    const params = new URLSearchParams(location.search);
    params.set("interval", next);
    history.replaceState(history.state, "", `${location.pathname}?${params}${location.hash}`);
  }, []);

  return { report, loading, error, interval, chooseInterval, reload, liveTick };
}
