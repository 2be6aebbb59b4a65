import { describe, expect, it } from "vitest";
import { nodeLabel } from "../graph";
import { portName } from "../overlay";
import type { DocNode } from "../../types";
import { TYPES } from "./fixtures";

const at = { x: 0, y: 0 };

describe("what the marketer reads on the canvas", () => {
  it("names a port by the name its node gives it, else by its id in words", () => {
    expect(portName("a", { a: "Subject with emoji" })).toBe("Subject with emoji");
    expect(portName("delivered_not_opened", undefined)).toBe("delivered not opened");
    expect(portName("yes", {})).toBe("yes");
  });

  it("names a node in a list by its label, else its type's label, numbered when two read the same, never by id", () => {
    const nodes: DocNode[] = [
      { id: "n_fpm42w4aanqb", type: "wait", settings: {}, position: at },
      { id: "n_other", type: "wait", settings: {}, position: at },
      { id: "n_third", type: "wait", label: "Cool-off", settings: {}, position: at },
    ];
    const waitLabel = TYPES.wait.label;
    expect(nodes.map((n) => nodeLabel(n, nodes, TYPES))).toEqual([`${waitLabel} 1`, `${waitLabel} 2`, "Cool-off"]);
    expect(nodes.map((n) => nodeLabel(n, nodes, TYPES)).join(" ")).not.toContain("n_");
  });
});
