// Customers who entered and who converted, per hour or per day, in the report's time zone.
// Bars, one pair per bucket: a count per hour is not a continuous curve, and a line between
// two buckets would draw a trend nobody lived (a ramp from 0 at 10:00 to 30 at 11:00 for
// people who all came at 11:15). Buckets where nothing happened have no bar.

import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis, type TooltipContentProps } from "recharts";
import type { NameType, ValueType } from "recharts/types/component/DefaultTooltipContent";
import { bucketLabels, type BucketPoint } from "./buckets";
import { count } from "./format";
import type { Interval, Report } from "./types";

/** The tooltip of a bucket, in words: "Dec 1, 11:00 – 12:00 · 30 customers entered · 2 converted". */
function BucketTooltip({ active, payload }: TooltipContentProps<ValueType, NameType>) {
  const point = active && payload?.length ? (payload[0].payload as BucketPoint) : null;
  if (!point) return null;
  const people = (n: number) => `${count(n)} ${n === 1 ? "customer" : "customers"}`;
  return (
    <div className="series-tooltip" data-testid="series-tooltip">
      <div className="series-tooltip-when">{point.span}</div>
      <div><span className="swatch entered" /> {people(point.entered)} entered</div>
      <div><span className="swatch converted" /> {people(point.converted)} converted</div>
    </div>
  );
}

export function SeriesChart(props: {
  series: Report["series"];
  interval: Interval;
  loading: boolean;
  onInterval: (interval: Interval) => void;
}) {
  const { series } = props;
  const points = series.points ?? [];
  const data = bucketLabels(points, series.interval, series.timezone);
  const withData = points.filter((p) => (p.entered ?? 0) > 0 || (p.converted ?? 0) > 0).length;
  const unit = series.interval === "hour" ? "Hour" : "Day";
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
      <div className="report-card-block" data-testid="series-chart" data-interval={series.interval} data-points={points.length}
           data-buckets-with-data={withData}>
        {points.length === 0 && <p className="chart-empty muted">Nobody has entered yet.</p>}
        <div className="chart" role="img"
             aria-label={`Customers who entered and converted per ${series.interval}, ${withData} ${series.interval}s with activity`}>
          <ResponsiveContainer width="100%" height={280} initialDimension={{ width: 900, height: 280 }}>
            <BarChart data={data} margin={{ top: 10, right: 16, bottom: 18, left: 8 }} barGap={2}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="tick" tick={{ fontSize: 11 }} minTickGap={16} interval="preserveStartEnd"
                     label={{ value: `${unit} starting (${series.timezone})`, position: "insideBottom", offset: -12, fontSize: 12 }} />
              <YAxis allowDecimals={false} tick={{ fontSize: 11 }} width={52}
                     label={{ value: "Customers", angle: -90, position: "insideLeft", offset: 4, fontSize: 12 }} />
              <Tooltip content={BucketTooltip} cursor={{ fill: "rgba(37, 99, 235, 0.06)" }} />
              <Legend verticalAlign="top" height={26} />
              <Bar dataKey="entered" name="Entered" className="series-entered" fill="#2563eb" maxBarSize={36} isAnimationActive={false} />
              <Bar dataKey="converted" name="Converted" className="series-converted" fill="#16a34a" maxBarSize={36} isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </div>
        <p className="muted chart-note">Times in {series.timezone}. A bucket without a bar had nobody enter or convert.</p>
      </div>
    </section>
  );
}
