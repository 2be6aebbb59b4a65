// Copy and paste of canvas fragments, within a tab and between tabs.
//
// The fragment travels as text/plain in the copy event's clipboardData (no permission needed,
// works over plain http://127.0.0.1). It is also kept in localStorage and announced on a
// BroadcastChannel, so a paste still works where the clipboard is refused or empty.

import validator from "@rjsf/validator-ajv8";
import type { RJSFSchema } from "@rjsf/utils";
import type { DocEdge, DocNode, JSONSchema, Position } from "../types";
import {
  declOf,
  fromCanvasEdge,
  fromCanvasNode,
  newId,
  toCanvasEdge,
  toCanvasNode,
  type CanvasEdge,
  type CanvasNode,
  type TypeMap,
} from "./graph";

export const FRAGMENT_FORMAT = "campaign-canvas/fragment";
const STORAGE_KEY = "campaign-canvas:clipboard";
const CHANNEL = "campaign-canvas:clipboard";
/** where a paste lands when the pointer is not over the canvas: this far from the originals */
const OFFSET = 40;

export interface Fragment {
  format: typeof FRAGMENT_FORMAT;
  version: 1;
  nodes: DocNode[];
  edges: DocEdge[];
}

/** The selected nodes and only the edges between them. */
export function buildFragment(nodes: CanvasNode[], edges: CanvasEdge[]): Fragment | null {
  const chosen = nodes.filter((n) => n.selected);
  if (chosen.length === 0) return null;
  const ids = new Set(chosen.map((n) => n.id));
  return {
    format: FRAGMENT_FORMAT,
    version: 1,
    nodes: chosen.map(fromCanvasNode),
    edges: edges.filter((e) => ids.has(e.source) && ids.has(e.target)).map(fromCanvasEdge),
  };
}

export function parseFragment(text: string | null | undefined): Fragment | null {
  if (!text) return null;
  try {
    const data = JSON.parse(text);
    if (data?.format !== FRAGMENT_FORMAT || data.version !== 1) return null;
    if (!Array.isArray(data.nodes) || !Array.isArray(data.edges)) return null;
    return data as Fragment;
  } catch {
    return null;
  }
}

/** Every reason the fragment cannot be pasted here (unknown node types, invalid settings). */
export function fragmentProblems(fragment: Fragment, types: TypeMap): string[] {
  const problems: string[] = [];
  for (const node of fragment.nodes) {
    const decl = declOf(types, node?.type, node?.version);
    if (!decl) {
      const version = node?.version === undefined ? "" : ` version ${node.version}`;
      problems.push(`node type "${String(node?.type)}"${version} is not installed on this server`);
      continue;
    }
    const { errors } = validator.validateFormData(node.settings ?? {}, decl.schema as RJSFSchema);
    for (const error of errors) problems.push(`${decl.label}: ${error.stack}`);
  }
  const ids = new Set(fragment.nodes.map((n) => n.id));
  for (const edge of fragment.edges) {
    if (!ids.has(edge.source) || !ids.has(edge.target)) problems.push(`edge ${edge.id} leaves the fragment`);
  }
  return problems;
}

/**
 * Canvas nodes and edges for a paste: new ids everywhere (node references inside settings
 * follow), the fragment's top-left corner at `at` (the pointer) or offset from the original.
 */
export function instantiate(fragment: Fragment, at: Position | null, types: TypeMap): { nodes: CanvasNode[]; edges: CanvasEdge[] } {
  const renamed = new Map(fragment.nodes.map((n) => [n.id, newId("n")]));
  const xs = fragment.nodes.map((n) => n.position?.x ?? 0);
  const ys = fragment.nodes.map((n) => n.position?.y ?? 0);
  const origin = { x: Math.min(...xs), y: Math.min(...ys) };
  const shift = at ? { x: at.x - origin.x, y: at.y - origin.y } : { x: OFFSET, y: OFFSET };
  const nodes = fragment.nodes.map((node, index) => {
    const decl = declOf(types, node.type, node.version);
    const moved: DocNode = {
      ...node,
      id: renamed.get(node.id)!,
      settings: renameRefs(node.settings ?? {}, decl?.schema ?? {}, renamed) as Record<string, unknown>,
      position: { x: (node.position?.x ?? 0) + shift.x, y: (node.position?.y ?? 0) + shift.y },
    };
    return { ...toCanvasNode(moved, types, index), selected: true };
  });
  const edges = fragment.edges.map((edge) => ({
    ...toCanvasEdge({ ...edge, id: newId("e"), source: renamed.get(edge.source)!, target: renamed.get(edge.target)! }),
    selected: true,
  }));
  return { nodes, edges };
}

/** Settings with every `x-node-ref` field that names a copied node renamed to its copy. */
function renameRefs(value: unknown, schema: JSONSchema, renamed: Map<string, string>): unknown {
  if (typeof value === "string" && schema["x-node-ref"]) return renamed.get(value) ?? value;
  if (Array.isArray(value)) {
    const items = (schema.items ?? {}) as JSONSchema;
    return value.map((item) => renameRefs(item, items, renamed));
  }
  if (value && typeof value === "object") {
    const properties = (schema.properties ?? {}) as Record<string, JSONSchema>;
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, renameRefs(item, properties[key] ?? {}, renamed)]),
    );
  }
  return value;
}

// ----------------------------------------------------------------- the fallback between tabs

const channel = typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel(CHANNEL);

export function share(fragment: Fragment): void {
  const text = JSON.stringify(fragment);
  try {
    localStorage.setItem(STORAGE_KEY, text);
  } catch {
    // storage full or refused: the clipboard still carries it
  }
  channel?.postMessage(text);
}

export function sharedFragment(): Fragment | null {
  try {
    return parseFragment(localStorage.getItem(STORAGE_KEY));
  } catch {
    return null;
  }
}

/** Call `listener` whenever any tab copies a fragment. */
export function onShared(listener: () => void): () => void {
  const onMessage = () => listener();
  const onStorage = (event: StorageEvent) => event.key === STORAGE_KEY && listener();
  channel?.addEventListener("message", onMessage);
  window.addEventListener("storage", onStorage);
  return () => {
    channel?.removeEventListener("message", onMessage);
    window.removeEventListener("storage", onStorage);
  };
}

/** Whether the keyboard is in a text field, where copy and paste belong to the field. */
export function typingInField(target: EventTarget | null): boolean {
  const element = target instanceof HTMLElement ? target : null;
  if (!element) return false;
  return element.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(element.tagName);
}
