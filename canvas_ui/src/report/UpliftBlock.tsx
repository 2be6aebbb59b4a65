// A control group's hold-out against everyone else: both conversion rates, the uplift in
// percentage points with its confidence interval, and whether it is significant.

import { Bar, BarChart, CartesianGrid, LabelList, Rectangle, ResponsiveContainer, Tooltip, XAxis, YAxis, type BarShapeProps } from "recharts";
import { chartPercent, count, nodeName, percent, points, relative } from "./format";
import type { ControlGroupReport } from "./types";

type Side = { side: string; rate: number; label: string; color: string };

const SideBar = (props: BarShapeProps) => <Rectangle {...props} fill={(props.payload as Side).color} />;

export function UpliftBlock({ group }: { group: ControlGroupReport }) {
  const { control, treated, uplift } = group;
  const data: Side[] = [
    { side: "Control", rate: chartPercent(control.rate), label: percent(control.rate), color: "#94a3b8" },
    { side: "Treated", rate: chartPercent(treated.rate), label: percent(treated.rate), color: "#2563eb" },
  ];
  const confidence = uplift ? `${Math.round((uplift.confidence ?? 0.95) * 100)}%` : "95%";
  return (
    <div className="report-card-block uplift" data-testid="uplift" data-node-id={group.node_id}
         data-significant={uplift ? String(uplift.significant) : undefined}>
      <h3><span>{nodeName(group)}</span></h3>
      <div className="uplift-body">
        <div className="chart" role="img" aria-label={`Conversion rate of the control group and of the treated customers of ${nodeName(group)}`}>
          <ResponsiveContainer width="100%" height={170} initialDimension={{ width: 320, height: 170 }}>
            <BarChart data={data} layout="vertical" margin={{ top: 4, right: 48, bottom: 0, left: 8 }}>
              <CartesianGrid strokeDasharray="3 3" horizontal={false} />
              <XAxis type="number" unit="%" tick={{ fontSize: 11 }} domain={[0, (max: number) => Math.max(1, Math.ceil(max))]} />
              <YAxis type="category" dataKey="side" tick={{ fontSize: 12 }} width={64} />
              <Tooltip formatter={(value) => `${Number(value).toFixed(1)}%`} />
              <Bar dataKey="rate" name="Conversion rate" shape={SideBar} isAnimationActive={false} barSize={26}>
                <LabelList dataKey="label" position="right" fontSize={12} />
              </Bar>
            </BarChart>
          </ResponsiveContainer>
        </div>
        <dl className="uplift-figures">
          <div>
            <dt>Control</dt>
            <dd>
              <span data-testid="uplift-control-rate">{percent(control.rate)}</span>
              <span className="muted"> · {count(control.converted)} of {count(control.customers)}</span>
            </dd>
          </div>
          <div>
            <dt>Treated</dt>
            <dd>
              <span data-testid="uplift-treated-rate">{percent(treated.rate)}</span>
              <span className="muted"> · {count(treated.converted)} of {count(treated.customers)}</span>
            </dd>
          </div>
          {uplift ? (
            <>
              <div>
                <dt>Uplift</dt>
                <dd>
                  <strong data-testid="uplift-absolute">{points(uplift.absolute)}</strong>
                  <span className="muted" data-testid="uplift-relative"> ({relative(uplift.relative)} relative)</span>
                </dd>
              </div>
              <div>
                <dt>{confidence} CI</dt>
                <dd data-testid="uplift-ci">{points(uplift.ci_low)} to {points(uplift.ci_high)}</dd>
              </div>
              <div>
                <dt>Significant</dt>
                <dd>
                  <span className={`significance ${uplift.significant ? "yes" : "no"}`} data-testid="uplift-significant">
                    {uplift.significant ? "Significant" : "Not significant"}
                  </span>
                </dd>
              </div>
            </>
          ) : (
            <div>
              <dt>Uplift</dt>
              <dd className="muted" data-testid="uplift-absolute">– (needs customers on both sides)</dd>
            </div>
          )}
        </dl>
      </div>
    </div>
  );
}
