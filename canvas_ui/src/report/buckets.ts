// The time series' buckets as the chart labels them: a short tick under each bar and the
// bucket's whole span in words for its tooltip, in the report's time zone.

import { zoned } from "./format";
import type { Interval, SeriesPoint } from "./types";

export interface BucketPoint {
  start: string;
  /** under the bar: "Dec 1, 11:00" (hours) or "Dec 1" (days) */
  tick: string;
  /** in the tooltip: "Dec 1, 11:00 – 12:00" (hours) or "Tuesday, Dec 1, 2026" (days) */
  span: string;
  entered: number;
  converted: number;
}

const HOUR_MS = 3_600_000;

/** Each point with its labels; a start that is no date keeps its text (never "Invalid Date"). */
export function bucketLabels(points: SeriesPoint[], interval: Interval, timeZone: string): BucketPoint[] {
  const hourly = interval === "hour";
  const tick = zoned(timeZone, hourly ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
    : { month: "short", day: "numeric" });
  const day = zoned(timeZone, { weekday: "long", month: "short", day: "numeric", year: "numeric" });
  const clock = zoned(timeZone, { hour: "2-digit", minute: "2-digit" });
  return points.map((p) => {
    const when = new Date(p.start);
    const known = !Number.isNaN(when.getTime());
    const span = !known ? p.start
      : hourly ? `${tick.format(when)} – ${clock.format(new Date(when.getTime() + HOUR_MS))}` : day.format(when);
    return { start: p.start, tick: known ? tick.format(when) : p.start, span, entered: p.entered ?? 0, converted: p.converted ?? 0 };
  });
}
