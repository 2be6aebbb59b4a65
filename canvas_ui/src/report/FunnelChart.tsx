// A message node's delivery funnel: queued → sent → delivered → opened → clicked as bars,
// with what went wrong (bounced, failed, unsubscribed) beside them, and the rates as text.

import { Bar, BarChart, CartesianGrid, Rectangle, ResponsiveContainer, Tooltip, XAxis, YAxis, type BarShapeProps } from "recharts";
import { count, nodeName, percent } from "./format";
import type { Funnel, FunnelRates, MessageReport } from "./types";

const STAGES: Array<{ key: keyof Funnel; label: string; color: string }> = [
  { key: "queued", label: "Queued", color: "#94a3b8" },
  { key: "sent", label: "Sent", color: "#60a5fa" },
  { key: "delivered", label: "Delivered", color: "#3b82f6" },
  { key: "opened", label: "Opened", color: "#2563eb" },
  { key: "clicked", label: "Clicked", color: "#1d4ed8" },
  { key: "bounced", label: "Bounced", color: "#f59e0b" },
  { key: "failed", label: "Failed", color: "#dc2626" },
  { key: "unsubscribed", label: "Unsubscribed", color: "#a855f7" },
];

const RATES: Array<{ key: keyof FunnelRates; label: string; of: string }> = [
  { key: "sent", label: "Sent", of: "of queued" },
  { key: "delivered", label: "Delivered", of: "of sent" },
  { key: "opened", label: "Opened", of: "of delivered" },
  { key: "clicked", label: "Clicked", of: "of delivered" },
  { key: "click_to_open", label: "Click-to-open", of: "of opened" },
  { key: "bounced", label: "Bounced", of: "of sent" },
  { key: "failed", label: "Failed", of: "of queued" },
  { key: "unsubscribed", label: "Unsubscribed", of: "of delivered" },
];

type Stage = { stage: string; value: number; color: string };

/** Each bar in its stage's colour (the `shape` way: recharts 3 deprecates <Cell>). */
const StageBar = (props: BarShapeProps) => <Rectangle {...props} fill={(props.payload as Stage).color} />;

export function FunnelChart({ message }: { message: MessageReport }) {
  const data: Stage[] = STAGES.map((s) => ({ stage: s.label, value: message.funnel?.[s.key] ?? 0, color: s.color }));
  return (
    <div className="report-card-block funnel" data-testid="funnel-chart" data-node-id={message.node_id}>
      <h3>
        <span>{nodeName(message)}</span>
        {message.type_label !== nodeName(message) && <span className="muted"> · {message.type_label}</span>}
      </h3>
      <div className="funnel-body">
        <div className="chart" aria-label={`Delivery funnel of ${nodeName(message)}`} role="img">
          <ResponsiveContainer width="100%" height={220} initialDimension={{ width: 520, height: 220 }}>
            <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="stage" tick={{ fontSize: 11 }} interval={0} />
              <YAxis allowDecimals={false} tick={{ fontSize: 11 }} width={40} />
              <Tooltip formatter={(value) => count(Number(value))} />
              <Bar dataKey="value" name="Messages" shape={StageBar} isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </div>
        <dl className="rates" data-testid="funnel-rates">
          {RATES.map((r) => (
            <div key={r.key} className="rate-row" data-rate={r.key}>
              <dt>{r.label}</dt>
              <dd title={r.of}>{percent(message.rates?.[r.key])}</dd>
            </div>
          ))}
          {(message.funnel?.uncertain ?? 0) > 0 && (
            <div className="rate-row" title="The provider could not confirm these; they are never resent">
              <dt>Uncertain</dt>
              <dd>{count(message.funnel.uncertain)}</dd>
            </div>
          )}
        </dl>
      </div>
    </div>
  );
}
