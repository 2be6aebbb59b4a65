// A node on the canvas: its label, its type, an input handle on top (unless it is a trigger),
// one labelled output handle per port along the bottom (journeys read top to bottom; a port
// shows its name, e.g. an A/B variant's, and its full name on hover), a line or two saying
// what its settings do (the server's summary), its problems and its live counts. All text is JSX text:
// React escapes it, so a label like <img onerror=...> is shown, never run. A node on an older
// version of its type than the newest says which ("v1"): it runs and is edited as that version.

import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { declOf, INPUT_HANDLE, type CanvasNode } from "./graph";
import { count, portName, useOverlay } from "./overlay";
import type { NodeStats } from "../types";

const NOTHING_YET: NodeStats = { entered: 0, waiting: 0, left: {} };
/** a card is this wide, or wider when its ports need room for their names */
const NODE_WIDTH = 220;
const PORT_WIDTH = 76;

export const CampaignNode = memo(function CampaignNode({ id, data, selected }: NodeProps<CanvasNode>) {
  const { types, problems, stats, summaries, portLabels } = useOverlay();
  const summary = summaries[id];
  const decl = declOf(types, data.nodeType, data.version);
  const newest = types[data.nodeType];
  const old = data.version !== undefined && newest !== undefined && data.version !== newest.version;
  const mine = problems[id] ?? [];
  const errors = mine.filter((p) => p.severity !== "warning");
  const live = stats ? (stats.nodes[id] ?? NOTHING_YET) : null;
  const classes = ["cc-node", `cat-${decl?.category ?? "unknown"}`, errors.length ? "has-errors" : "",
    mine.length && !errors.length ? "has-warnings" : "", selected ? "selected" : ""].filter(Boolean).join(" ");
  return (
    <div className={classes} data-testid="canvas-node" data-node-id={id} data-node-type={data.nodeType}
         style={{ width: Math.max(NODE_WIDTH, data.ports.length * PORT_WIDTH) }}>
      {!decl?.entry && <Handle type="target" position={Position.Top} id={INPUT_HANDLE} className="cc-handle-in" />}
      <div className="cc-node-head">
        <span className="cc-node-category">
          {decl?.category ?? newest?.category ?? "unknown type"}
          {old && (
            <span className="cc-node-version" data-testid="node-version"
                  title={`Version ${data.version} of this node type; the newest is ${newest.version}`}> v{data.version}</span>
          )}
        </span>
        {mine.length > 0 && (
          <span className="cc-node-problems" data-testid="node-problems" title={mine.map((p) => p.message).join("\n")}>
            {errors.length ? `${errors.length} error${errors.length > 1 ? "s" : ""}` : `${mine.length} warning${mine.length > 1 ? "s" : ""}`}
          </span>
        )}
      </div>
      <div className="cc-node-title" data-testid="node-label">{data.label || decl?.label || newest?.label || data.nodeType}</div>
      {data.label && decl && <div className="cc-node-type">{decl.label}</div>}
      {summary && <div className="cc-node-summary" data-testid="node-summary" title={summary}>{summary}</div>}
      {!decl && !newest && <div className="cc-node-type">“{data.nodeType}” is not installed</div>}
      {!decl && newest && <div className="cc-node-type">version {data.version} of “{newest.label}” is not installed</div>}
      {/* the counters' row is always there (empty until the campaign runs): a node keeps its
          size when they appear, so nodes placed by hand never come to overlap */}
      <div className="cc-node-stats" data-testid={live ? "node-stats" : undefined} aria-hidden={!live}>
        {live && (
          <>
            <span><b data-testid="node-entered">{count(live.entered)}</b> entered</span>
            <span><b data-testid="node-waiting">{count(live.waiting)}</b> waiting</span>
          </>
        )}
      </div>
      <div className="cc-ports">
        {data.ports.map((port) => (
          <div className="cc-port" key={port} data-port={port} title={portName(port, portLabels[id])}>
            <span className="cc-port-label" data-testid="port-label">{portName(port, portLabels[id])}</span>
            {live && <span className="cc-port-count" data-testid="port-count">{count(live.left[port])}</span>}
            <Handle type="source" position={Position.Bottom} id={port} className="cc-handle-out" />
          </div>
        ))}
      </div>
    </div>
  );
});
