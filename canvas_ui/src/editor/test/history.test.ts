import { describe, expect, it } from "vitest";
import { COALESCE_MS, LIMIT, UndoStack, type Snapshot } from "../history";
import { toCanvasNode } from "../graph";
import { TYPES } from "./fixtures";

const graph = (...ids: string[]): Snapshot => ({
  nodes: ids.map((id) => ({ ...toCanvasNode({ id, type: "wait", settings: {} }, TYPES), selected: true })),
  edges: [],
});
const ids = (s: Snapshot | null) => s?.nodes.map((n) => n.id);

describe("undo and redo", () => {
  it("step back and forth through what was recorded, deselected", () => {
    const stack = new UndoStack();
    stack.record(graph(), undefined, 0);
    stack.record(graph("a"), undefined, 10);
    const back = stack.undo(graph("a", "b"));
    expect(ids(back)).toEqual(["a"]);
    expect(back!.nodes.every((n) => !n.selected)).toBe(true);
    expect(ids(stack.undo(graph("a")))).toEqual([]);
    expect(stack.undo(graph())).toBeNull();
    expect(ids(stack.redo(graph()))).toEqual(["a"]);
    expect(ids(stack.redo(graph("a")))).toEqual(["a", "b"]);
    expect(stack.canRedo).toBe(false);
  });

  it("a new change after undo drops what could be redone", () => {
    const stack = new UndoStack();
    stack.record(graph(), undefined, 0);
    stack.undo(graph("a"));
    expect(stack.canRedo).toBe(true);
    stack.record(graph(), undefined, 5);
    expect(stack.canRedo).toBe(false);
  });

  it("merges a burst of typing in one node into one step, not across a pause or another node", () => {
    const stack = new UndoStack();
    expect(stack.record(graph("x"), "settings:a", 0)).toBe(true);
    expect(stack.record(graph("y"), "settings:a", COALESCE_MS - 1)).toBe(false);
    expect(stack.record(graph("z"), "settings:a", 2 * COALESCE_MS - 2)).toBe(false);
    expect(stack.record(graph("w"), "settings:b", 2 * COALESCE_MS)).toBe(true);
    expect(stack.record(graph("v"), "settings:b", 4 * COALESCE_MS)).toBe(true);
    expect(ids(stack.undo(graph()))).toEqual(["v"]);
    expect(ids(stack.undo(graph()))).toEqual(["w"]);
    expect(ids(stack.undo(graph()))).toEqual(["x"]);
  });

  it(`keeps the last ${LIMIT} steps`, () => {
    const stack = new UndoStack();
    for (let i = 0; i < LIMIT + 5; i++) stack.record(graph(`n${i}`), undefined, i);
    let steps = 0;
    let last: Snapshot | null = null;
    for (let s = stack.undo(graph()); s; s = stack.undo(graph())) [steps, last] = [steps + 1, s];
    expect(steps).toBe(LIMIT);
    expect(ids(last)).toEqual(["n5"]);
  });
});
