import { describe, expect, it } from "vitest";
import { draftKey, dropDraft, readDraft, tabId, writeDraft } from "../drafts";

/** A Storage as the browser's behaves (getItem null when absent; setItem may throw when full). */
class MemoryStorage implements Storage {
  private items = new Map<string, string>();
  constructor(private readonly capacity = Infinity) {}
  get length() { return this.items.size; }
  clear() { this.items.clear(); }
  getItem(key: string) { return this.items.get(key) ?? null; }
  key(index: number) { return [...this.items.keys()][index] ?? null; }
  removeItem(key: string) { this.items.delete(key); }
  setItem(key: string, value: string) {
    if (value.length > this.capacity) throw new DOMException("full", "QuotaExceededError");
    this.items.set(key, value);
  }
}

const document = { name: "Spring sale", nodes: [{ id: "n1", type: "wait", settings: {} }], edges: [] };

describe("local drafts", () => {
  it("keeps a tab's id across reads, and a new one per tab", () => {
    const tab = new MemoryStorage();
    expect(tabId(tab)).toBe(tabId(tab));
    expect(tabId(new MemoryStorage())).not.toBe(tabId(tab));
  });

  it("keys saved campaigns by id and new ones by tab", () => {
    expect(draftKey(7, "abc")).toBe("cc-draft:campaign:7");
    expect(draftKey(null, "abc")).toBe("cc-draft:new:abc");
    expect(draftKey(null, "abc")).not.toBe(draftKey(null, "xyz"));
  });

  it("reads back what it wrote, and nothing once dropped", () => {
    const storage = new MemoryStorage();
    expect(writeDraft(storage, "k", { document, baseVersion: 2, savedAt: 1 })).toBe(true);
    expect(readDraft(storage, "k")).toEqual({ document, baseVersion: 2, savedAt: 1 });
    dropDraft(storage, "k");
    expect(readDraft(storage, "k")).toBeNull();
  });

  it("ignores text that is not a draft", () => {
    const storage = new MemoryStorage();
    storage.setItem("a", "{not json");
    storage.setItem("b", JSON.stringify({ document: { nodes: "x" } }));
    expect(readDraft(storage, "a")).toBeNull();
    expect(readDraft(storage, "b")).toBeNull();
  });

  it("says so when the browser refuses to keep it", () => {
    expect(writeDraft(new MemoryStorage(10), "k", { document, baseVersion: null, savedAt: 1 })).toBe(false);
  });
});
