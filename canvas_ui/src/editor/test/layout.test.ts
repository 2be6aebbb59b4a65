import { describe, expect, it } from "vitest";
import { autoLayout } from "../layout";
import { toCanvasEdge, toCanvasNode } from "../graph";
import { TYPES } from "./fixtures";

describe("auto-layout", () => {
  it("ranks the graph top to bottom from the trigger, branches side by side, none overlapping", () => {
    const nodes = ["t", "f", "yes", "no", "end"].map((id, i) =>
      toCanvasNode({ id, type: id === "t" ? "event_trigger" : "wait", settings: {}, position: { x: 0, y: 0 } }, TYPES, i));
    const edges = [["t", "f"], ["f", "yes"], ["f", "no"], ["yes", "end"], ["no", "end"]].map(([s, t], i) =>
      toCanvasEdge({ id: `e${i}`, source: s, source_port: "out", target: t }));
    const at = Object.fromEntries(autoLayout(nodes, edges).map((n) => [n.id, n.position]));
    expect(at.t.y).toBeLessThan(at.f.y);
    expect(at.f.y).toBeLessThan(at.yes.y);
    expect(at.yes.y).toBe(at.no.y);
    expect(Math.abs(at.yes.x - at.no.x)).toBeGreaterThanOrEqual(220);
    expect(at.end.y).toBeGreaterThan(at.yes.y);
    expect(Object.values(at).every((p) => Number.isInteger(p.x) && Number.isInteger(p.y))).toBe(true);
  });
});
