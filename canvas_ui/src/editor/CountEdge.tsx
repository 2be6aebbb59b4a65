// An edge with how many customers went along it (its source port's count) and, when selected,
// a button to delete it.

import { BaseEdge, EdgeLabelRenderer, getBezierPath, type EdgeProps } from "@xyflow/react";
import { memo } from "react";
import type { CanvasEdge } from "./graph";
import { count, useOverlay } from "./overlay";

export const CountEdge = memo(function CountEdge(props: EdgeProps<CanvasEdge>) {
  const { stats, deleteEdge, readOnly } = useOverlay();
  const [path, labelX, labelY] = getBezierPath(props);
  const passed = stats?.nodes[props.source]?.left[props.sourceHandleId ?? ""];
  const showCount = stats !== null;
  return (
    <>
      <BaseEdge id={props.id} path={path} markerEnd={props.markerEnd} style={props.style}
                className={props.selected ? "cc-edge selected" : "cc-edge"} />
      {(showCount || (props.selected && !readOnly)) && (
        <EdgeLabelRenderer>
          <div className="cc-edge-label nodrag nopan" style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}>
            {showCount && <span data-testid="edge-count" data-edge-id={props.id}>{count(passed)}</span>}
            {props.selected && !readOnly && (
              <button type="button" className="cc-edge-delete" title="Delete connection" onClick={() => deleteEdge(props.id)}>×</button>
            )}
          </div>
        </EdgeLabelRenderer>
      )}
    </>
  );
});
