import { describe, expect, it } from "vitest";
import { bucketLabels } from "../buckets";
import { distinctNames, nodeName, statusWords } from "../format";

describe("bucketLabels", () => {
  it("labels an hour by its start and its span, in the report's time zone", () => {
    const [point] = bucketLabels([{ start: "2026-12-01T11:00:00Z", entered: 30, converted: 0 }], "hour", "Europe/Paris");
    expect(point.tick).toMatch(/12:00/);
    // the browser's locale decides 13:00 or 01:00 PM; the span runs from the tick to the next hour
    expect(point.span.startsWith(`${point.tick} – `)).toBe(true);
    expect(point.span).toMatch(/– (13|0?1):00/);
    expect(point.entered).toBe(30);
  });

  it("adds no bucket of its own: one point is one bar, no ramp from an invented zero", () => {
    expect(bucketLabels([{ start: "2026-12-01T11:00:00Z", entered: 30, converted: 0 }], "hour", "UTC")).toHaveLength(1);
  });

  it("names a day in words and keeps a start that is no date as text", () => {
    const [day, junk] = bucketLabels([{ start: "2026-12-01T00:00:00Z", entered: 1, converted: 1 },
      { start: "soon", entered: 0, converted: 0 }], "day", "UTC");
    expect(day.span).toMatch(/Tuesday/);
    expect(day.span).toMatch(/2026/);
    expect(junk.tick).toBe("soon");
  });
});

describe("node names", () => {
  it("is the label, else the type's palette name, never an id", () => {
    expect(nodeName({ label: "Welcome", type_label: "Send email" })).toBe("Welcome");
    expect(nodeName({ label: null, type_label: "Send email" })).toBe("Send email");
    expect(nodeName({ label: "", type_label: "" })).toBe("Unnamed step");
  });

  it("tells two nodes of the same name apart with their type, then a number", () => {
    expect(distinctNames([
      { label: "Welcome", type_label: "Send email" }, { label: "Welcome", type_label: "Send SMS" },
      { label: null, type_label: "Wait" }, { label: null, type_label: "Wait" }, { label: "Solo", type_label: "Wait" },
    ])).toEqual(["Welcome · Send email", "Welcome · Send SMS", "Wait (1)", "Wait (2)", "Solo"]);
  });

  it("says message statuses in words", () => {
    expect(statusWords("spamreport")).toBe("marked as spam");
    expect(statusWords("none")).toBe("no message");
    expect(statusWords("some_new_status")).toBe("some new status");
  });
});
