// Customers who entered and who converted, per hour or per day, in the report's time zone.

import { Area, AreaChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { count, zoned } from "./format";
import type { Interval, Report } from "./types";

export function SeriesChart(props: {
  series: Report["series"];
  interval: Interval;
  loading: boolean;
  onInterval: (interval: Interval) => void;
}) {
  const { series } = props;
  const hourly = series.interval === "hour";
  const label = zoned(series.timezone, hourly
    ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
    : { month: "short", day: "numeric", year: "numeric" });
  const points = series.points ?? [];
  const data = points.map((p) => {
    const when = new Date(p.start);
    return { when: Number.isNaN(when.getTime()) ? p.start : label.format(when), entered: p.entered ?? 0, converted: p.converted ?? 0 };
  });
  const first = points.length === 1 ? new Date(points[0].start) : null;
  if (first && !Number.isNaN(first.getTime())) {
    // one bucket is a dot, not an area: draw it rising from the bucket before, where nothing
    // happened yet (half a day back always lands on the day before, whatever DST does)
    const before = new Date(first.getTime() - (hourly ? 3_600_000 : 43_200_000));
    data.unshift({ when: label.format(before), entered: 0, converted: 0 });
  }
  return (
    <section className="report-section" aria-labelledby="report-series-title">
      <div className="section-head">
        <h2 id="report-series-title">Entered and converted over time</h2>
        <span className="spacer" />
        <div className="segmented" role="radiogroup" aria-label="Bucket size">
          {(["hour", "day"] as const).map((interval) => (
            <button key={interval} type="button" role="radio" aria-checked={props.interval === interval}
                    className={props.interval === interval ? "on" : undefined} disabled={props.loading && props.interval !== interval}
                    data-testid={`interval-${interval}`} onClick={() => props.onInterval(interval)}>
              {interval === "hour" ? "Per hour" : "Per day"}
            </button>
          ))}
        </div>
      </div>
      <div className="report-card-block" data-testid="series-chart" data-interval={series.interval} data-points={points.length}>
        {points.length === 0 && <p className="chart-empty muted">Nobody has entered yet.</p>}
        <ResponsiveContainer width="100%" height={260} initialDimension={{ width: 900, height: 260 }}>
          <AreaChart data={data} margin={{ top: 10, right: 16, bottom: 0, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="when" tick={{ fontSize: 11 }} minTickGap={24} interval="preserveStartEnd" />
            <YAxis allowDecimals={false} tick={{ fontSize: 11 }} width={40} />
            <Tooltip formatter={(value) => count(Number(value))} />
            <Legend />
            <Area type="monotone" dataKey="entered" name="Entered" stroke="#2563eb" fill="#bfdbfe" fillOpacity={0.6}
                  dot={{ r: 3 }} isAnimationActive={false} />
            <Area type="monotone" dataKey="converted" name="Converted" stroke="#16a34a" fill="#bbf7d0" fillOpacity={0.6}
                  dot={{ r: 3 }} isAnimationActive={false} />
          </AreaChart>
        </ResponsiveContainer>
        <p className="muted chart-note">Times in {series.timezone}.</p>
      </div>
    </section>
  );
}
