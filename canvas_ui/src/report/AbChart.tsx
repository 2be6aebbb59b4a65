// An A/B test's variants side by side: the conversion rate of everyone each variant got and
// the rate of the metric the test is decided by, on its test group, with the winner marked.

import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { chartPercent, count, dateTime, nodeName, percent } from "./format";
import type { AbTestReport } from "./types";

const METRIC: Record<AbTestReport["metric"], string> = {
  opens: "Open rate (test group)",
  clicks: "Click rate (test group)",
  conversions: "Conversion rate (test group)",
};

const STATE: Record<AbTestReport["state"], string> = {
  testing: "Testing: customers are being split",
  evaluating: "Evaluating: waiting for the evaluation period to end",
  decided: "Decided",
};

/** What the marketer named the variant, else "Variant b" after the id they gave it. */
export const variantName = (v: { id: string; name: string | null }): string => v.name || `Variant ${v.id}`;

/** The test's metric as the table's column heading. */
const METRIC_SHORT: Record<AbTestReport["metric"], string> = { opens: "Opens", clicks: "Clicks", conversions: "Conversions" };

export function AbChart({ test }: { test: AbTestReport }) {
  const winner = test.variants.find((v) => v.winner) ?? test.variants.find((v) => v.id === test.winner) ?? null;
  const data = test.variants.map((v) => ({
    variant: v.winner ? `${variantName(v)} ★` : variantName(v),
    conversion: chartPercent(v.conversion_rate),
    metric: chartPercent(v.test_rate),
  }));
  return (
    <div className="report-card-block ab" data-testid="ab-chart" data-node-id={test.node_id} data-state={test.state}>
      <h3>
        <span>{nodeName(test)}</span>
        <span className={`ab-state ab-state-${test.state}`} data-testid="ab-state">
          {STATE[test.state] ?? test.state}{test.state === "decided" && test.decided_at ? ` ${dateTime(test.decided_at)}` : ""}
        </span>
        {winner && (
          <span className="winner-badge" data-testid="ab-winner" data-variant-id={winner.id} title={`${variantName(winner)} won`}>
            Winner: {variantName(winner)}
          </span>
        )}
      </h3>
      <div className="ab-body">
        <div className="chart" role="img" aria-label={`Variants of ${nodeName(test)}`}>
          <ResponsiveContainer width="100%" height={220} initialDimension={{ width: 480, height: 220 }}>
            <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="variant" tick={{ fontSize: 12 }} interval={0} />
              <YAxis unit="%" tick={{ fontSize: 11 }} width={48} domain={[0, (max: number) => Math.max(1, Math.ceil(max))]} />
              <Tooltip formatter={(value) => `${Number(value).toFixed(1)}%`} />
              <Legend />
              <Bar dataKey="conversion" name="Conversion rate" fill="#2563eb" isAnimationActive={false} />
              <Bar dataKey="metric" name={METRIC[test.metric] ?? test.metric} fill="#f59e0b" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </div>
        <table className="report-table compact" data-testid="ab-variants">
          <thead>
            <tr>
              <th>Variant</th>
              <th className="num" title="Customers in the test group">Test</th>
              <th className="num" title={METRIC[test.metric]}>{METRIC_SHORT[test.metric] ?? "Metric"}</th>
              <th className="num">Entered</th>
              <th className="num">Converted</th>
              <th className="num">Rate</th>
            </tr>
          </thead>
          <tbody>
            {test.variants.map((v) => (
              <tr key={v.id} data-testid="ab-variant" data-variant-id={v.id} className={v.winner ? "winner" : undefined}>
                <td>
                  <span className="variant-name">{variantName(v)}</span>
                  {v.winner && <span className="winner-tag">Winner</span>}
                </td>
                <td className="num">{count(v.test_size)}</td>
                <td className="num">{count(v.test_hits)} <span className="muted">({percent(v.test_rate)})</span></td>
                <td className="num">{count(v.entered)}</td>
                <td className="num">{count(v.converted)}</td>
                <td className="num" data-testid="ab-variant-rate">{percent(v.conversion_rate)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
