// Numbers and times the way a person reads them (the full ISO time goes in a title).

const counts = new Intl.NumberFormat();
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayAndTime = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
const fullDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });

export const formatCount = (n: number | undefined | null): string => counts.format(n ?? 0);

/** "4.2%" of entered who converted, or null when nobody entered. */
export function conversionRate(entered: number | undefined, converted: number | undefined): string | null {
  if (!entered) return null;
  const percent = ((converted ?? 0) / entered) * 100;
  return `${percent > 0 && percent < 10 ? percent.toFixed(1) : Math.round(percent)}%`;
}

const sameDay = (a: Date, b: Date) => a.toDateString() === b.toDateString();

/** "Today 14:05", "Yesterday 09:12", "12 Mar, 14:05", "12 Mar 2023" (local time). */
export function formatTime(iso: string | null | undefined, now = new Date()): string {
  if (!iso) return "—";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  if (sameDay(when, now)) return `Today ${timeOnly.format(when)}`;
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(when, yesterday)) return `Yesterday ${timeOnly.format(when)}`;
  return when.getFullYear() === now.getFullYear() ? dayAndTime.format(when) : fullDate.format(when);
}
