import { describe, expect, it } from "vitest";
import type { DocNode } from "../../types";
import {
  connectionProblem, declOf, fromCanvasEdge, fromCanvasNode, missingVersions, portsOf, toCanvasEdge, toCanvasNode,
  toDocument, type CanvasEdge, type CanvasNode,
} from "../graph";
import { AB, TYPES } from "./fixtures";

const node = (id: string, type: string, extra: Partial<DocNode> = {}): CanvasNode =>
  toCanvasNode({ id, type, settings: {}, position: { x: 0, y: 0 }, ...extra }, TYPES);
const edge = (source: string, port: string, target: string): CanvasEdge =>
  toCanvasEdge({ id: `${source}-${port}-${target}`, source, source_port: port, target });

describe("declarations by version", () => {
  it("draws a node with its own version's declaration, the newest when it names none", () => {
    expect(declOf(TYPES, "filter")?.ports).toEqual(["match", "else"]);
    expect(declOf(TYPES, "filter", 1)?.ports).toEqual(["yes", "no"]);
    expect(declOf(TYPES, "filter", 7)).toBeUndefined();
  });

  it("lists the old versions it has no declaration for, once each", () => {
    const nodes = [{ type: "wait", version: 3 }, { type: "wait", version: 3 }, { type: "filter", version: 1 },
                   { type: "nope", version: 2 }, { type: "wait" }];
    expect(missingVersions(nodes, TYPES)).toEqual([["wait", 3]]);
  });
});

describe("ports", () => {
  it("are an A/B test's variants, from its defaults until the server answers", () => {
    expect(portsOf(AB, {})).toEqual(["a", "b"]);
    expect(portsOf(AB, { variants: [{ id: "emoji" }, { id: "plain" }, { id: "" }] })).toEqual(["emoji", "plain"]);
  });

  it("are the type's own otherwise, and none for an unknown type", () => {
    expect(node("f", "filter").data.ports).toEqual(["match", "else"]);
    expect(node("f", "filter", { version: 1 }).data.ports).toEqual(["yes", "no"]);
    expect(portsOf(undefined, {})).toEqual([]);
  });
});

describe("documents", () => {
  it("survive a round trip through the canvas, version and label included", () => {
    const doc: DocNode = { id: "w", type: "wait", version: 1, label: "Two days", settings: { amount: 2 },
                           position: { x: 10.4, y: 20.6 } };
    expect(fromCanvasNode(toCanvasNode(doc, TYPES))).toEqual({ ...doc, position: { x: 10, y: 21 } });
    const e = { id: "e1", source: "t", source_port: "out", target: "w" };
    expect(fromCanvasEdge(toCanvasEdge(e))).toEqual(e);
    expect(toDocument({ name: "N" }, [toCanvasNode(doc, TYPES)], [toCanvasEdge(e)]).edges).toEqual([e]);
  });

  it("places nodes without a position on a grid, in order", () => {
    const placed = [0, 1, 4].map((i) => toCanvasNode({ id: `n${i}`, type: "wait", settings: {} }, TYPES, i).position);
    expect(placed).toEqual([{ x: 80, y: 80 }, { x: 340, y: 80 }, { x: 80, y: 250 }]);
  });
});

describe("connections the handles refuse, as the server would", () => {
  const nodes = [node("t", "event_trigger"), node("f", "filter"), node("g", "filter"), node("w", "wait")];

  it("refuses an input into a trigger, a self-loop and a duplicate edge", () => {
    expect(connectionProblem({ source: "f", sourceHandle: "match", target: "t" }, nodes, [], TYPES))
      .toBe("a trigger has no input");
    expect(connectionProblem({ source: "f", sourceHandle: "match", target: "f" }, nodes, [], TYPES))
      .toBe("a node cannot feed itself");
    expect(connectionProblem({ source: "t", sourceHandle: "out", target: "f" }, nodes, [edge("t", "out", "f")], TYPES))
      .toBe("already connected");
  });

  it("refuses a loop without a wait in it and allows one through a wait", () => {
    const chain = [edge("t", "out", "f"), edge("f", "match", "g")];
    expect(connectionProblem({ source: "g", sourceHandle: "match", target: "f" }, nodes, chain, TYPES))
      .toBe("a loop needs a wait node in it");
    const viaWait = [edge("t", "out", "f"), edge("f", "match", "w"), edge("w", "out", "g")];
    expect(connectionProblem({ source: "g", sourceHandle: "match", target: "f" }, nodes, viaWait, TYPES)).toBeNull();
  });

  it("allows another port of the same pair", () => {
    const edges = [edge("f", "match", "g")];
    expect(connectionProblem({ source: "f", sourceHandle: "else", target: "g" }, nodes, edges, TYPES)).toBeNull();
  });
});
