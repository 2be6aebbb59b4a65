import { describe, expect, it } from "vitest";
import { buildFragment, FRAGMENT_FORMAT, fragmentProblems, instantiate, parseFragment, type Fragment } from "../clipboard";
import { toCanvasEdge, toCanvasNode, type CanvasNode } from "../graph";
import { TYPES } from "./fixtures";

const selected = (n: CanvasNode, on = true): CanvasNode => ({ ...n, selected: on });
const canvas = [
  selected(toCanvasNode({ id: "t", type: "event_trigger", settings: { event: "order" }, position: { x: 0, y: 0 } }, TYPES)),
  selected(toCanvasNode({ id: "c", type: "check_email_status", settings: { email_node: "t" },
                          position: { x: 100, y: 200 } }, TYPES)),
  selected(toCanvasNode({ id: "w", type: "wait", settings: {}, position: { x: 0, y: 400 } }, TYPES), false),
];
const links = [toCanvasEdge({ id: "e1", source: "t", source_port: "out", target: "c" }),
               toCanvasEdge({ id: "e2", source: "c", source_port: "opened", target: "w" })];

describe("copy", () => {
  it("takes the selected nodes and only the edges between them", () => {
    const fragment = buildFragment(canvas, links)!;
    expect(fragment.format).toBe(FRAGMENT_FORMAT);
    expect(fragment.nodes.map((n) => n.id)).toEqual(["t", "c"]);
    expect(fragment.edges.map((e) => e.id)).toEqual(["e1"]);
  });

  it("gives nothing when nothing is selected", () => {
    expect(buildFragment(canvas.map((n) => selected(n, false)), links)).toBeNull();
  });
});

describe("paste", () => {
  it("reads only our own fragments", () => {
    const fragment = buildFragment(canvas, links)!;
    expect(parseFragment(JSON.stringify(fragment))).toEqual(fragment);
    for (const text of [null, "", "plain text", "{}", JSON.stringify({ ...fragment, version: 2 }),
                        JSON.stringify({ ...fragment, nodes: "x" })]) {
      expect(parseFragment(text)).toBeNull();
    }
  });

  it("refuses unknown node types, invalid settings and edges leaving the fragment, naming each", () => {
    const bad: Fragment = {
      format: FRAGMENT_FORMAT, version: 1,
      nodes: [{ id: "x", type: "send_fax", settings: {} }, { id: "t", type: "event_trigger", settings: {} },
              { id: "f", type: "filter", version: 9, settings: {} }],
      edges: [{ id: "e9", source: "t", source_port: "out", target: "gone" }],
    };
    const problems = fragmentProblems(bad, TYPES);
    expect(problems).toHaveLength(4);
    expect(problems[0]).toBe('node type "send_fax" is not installed on this server');
    expect(problems[1]).toMatch(/^Event: .*event/);
    expect(problems[2]).toBe('node type "filter" version 9 is not installed on this server');
    expect(problems[3]).toBe("edge e9 leaves the fragment");
  });

  it("gives new ids, renames references to copied nodes and lands at the pointer", () => {
    const pasted = instantiate(buildFragment(canvas, links)!, { x: 1000, y: 500 }, TYPES);
    const [trigger, check] = pasted.nodes;
    expect(trigger.id).not.toBe("t");
    expect(check.id).not.toBe("c");
    expect(check.data.settings.email_node).toBe(trigger.id);
    expect(pasted.nodes.map((n) => n.position)).toEqual([{ x: 1000, y: 500 }, { x: 1100, y: 700 }]);
    expect(pasted.edges).toHaveLength(1);
    expect(pasted.edges[0]).toMatchObject({ source: trigger.id, target: check.id, sourceHandle: "out", selected: true });
    expect(pasted.nodes.every((n) => n.selected)).toBe(true);
  });

  it("keeps a reference to a node that was not copied, and offsets when the pointer is elsewhere", () => {
    const fragment = buildFragment([canvas[1]], [])!;
    const pasted = instantiate(fragment, null, TYPES);
    expect(pasted.nodes[0].data.settings.email_node).toBe("t");
    expect(pasted.nodes[0].position).toEqual({ x: 140, y: 240 });
  });
});
