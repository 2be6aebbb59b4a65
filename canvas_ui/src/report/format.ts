// Figures the way the report shows them: rates may be null (nothing to divide by) and show
// as "–"; nothing here ever divides, so no NaN or Infinity reaches the page.

import type { Rate } from "./types";

export const NONE = "–";

const counts = new Intl.NumberFormat();

export const count = (n: number | null | undefined): string => counts.format(Number.isFinite(n) ? (n as number) : 0);

/** 0.1234 → "12.3%" (always one decimal); null (or anything not a number) → "–". */
export function percent(rate: Rate | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return NONE;
  return `${(rate * 100).toFixed(1)}%`;
}

/** A difference of two rates in percentage points, signed: 0.1 → "+10.0 pp". */
export function points(diff: number | null | undefined): string {
  if (diff === null || diff === undefined || !Number.isFinite(diff)) return NONE;
  const value = diff * 100;
  const sign = value > 0 ? "+" : value < 0 ? "−" : "±";
  return `${sign}${Math.abs(value).toFixed(1)} pp`;
}

/** A relative change: 1.0 → "+100%". */
export function relative(change: number | null | undefined): string {
  if (change === null || change === undefined || !Number.isFinite(change)) return NONE;
  const value = change * 100;
  const sign = value > 0 ? "+" : value < 0 ? "−" : "±";
  return `${sign}${Math.abs(value).toFixed(1)}%`;
}

/** A rate for a chart axis: a percentage number, 0 when there is none. */
export const chartPercent = (rate: Rate | undefined): number =>
  rate === null || rate === undefined || !Number.isFinite(rate) ? 0 : Math.round(rate * 10000) / 100;

const dateTimes = new Map<string, Intl.DateTimeFormat>();

/** A formatter in a time zone (the report's), falling back to the browser's for an unknown zone. */
export function zoned(timeZone: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = timeZone + JSON.stringify(options);
  let found = dateTimes.get(key);
  if (!found) {
    try {
      found = new Intl.DateTimeFormat(undefined, { ...options, timeZone });
    } catch {
      found = new Intl.DateTimeFormat(undefined, options);
    }
    dateTimes.set(key, found);
  }
  return found;
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return NONE;
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toLocaleString();
}

/** What a node is called on the page: its label, else its type's palette name; never its id,
 *  which means nothing to a marketer (the server always sends one of the two). */
export const nodeName = (node: { label?: string | null; type_label?: string | null }): string =>
  node.label || node.type_label || "Unnamed step";

/** Node names for a list where two nodes may share a label (two "Send email"): the type's
 *  name added where it tells them apart, then a number ("Send email (2)"), never an id. */
export function distinctNames<T extends { label?: string | null; type_label?: string | null }>(nodes: T[]): string[] {
  const plain = nodes.map(nodeName);
  const typed = nodes.map((n, i) =>
    plain.filter((p) => p === plain[i]).length > 1 && n.type_label && n.type_label !== plain[i] ? `${plain[i]} · ${n.type_label}` : plain[i]);
  const seen = new Map<string, number>();
  return typed.map((name) => {
    if (typed.filter((t) => t === name).length === 1) return name;
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return `${name} (${n})`;
  });
}

/** A message status in plain words ("spamreport" → "marked as spam"). */
export const MESSAGE_STATUS_WORDS: Record<string, string> = {
  queued: "queued", sending: "sending", sent: "sent", failed: "failed", uncertain: "maybe sent",
  processed: "accepted by provider", deferred: "delayed by provider", delivered: "delivered", opened: "opened",
  clicked: "clicked", unsubscribed: "unsubscribed", bounced: "bounced", undelivered: "not delivered",
  dropped: "dropped by provider", spamreport: "marked as spam", none: "no message",
};

export const statusWords = (status: string): string => MESSAGE_STATUS_WORDS[status] ?? status.replace(/_/g, " ");
