// The campaign document on the canvas: React Flow nodes and edges to and from the saved
// document, new ids, and the connection rules the handles enforce.
//
// A node is drawn, checked and edited with the declaration of its own version of its type:
// a campaign saved on version 1 keeps version 1's form and ports after version 2 arrives.

import { getDefaultFormState, type RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import type { Edge, Node } from "@xyflow/react";
import type { CampaignDocument, DocEdge, DocNode, NodeTypeDecl } from "../types";

/** What a canvas node carries: the document node's fields plus its current output ports. */
export type NodeData = {
  nodeType: string;
  /** the type's version the node is on; absent: the newest */
  version?: number;
  label?: string;
  settings: Record<string, unknown>;
  ports: string[];
  [key: string]: unknown;
};
export type CanvasNode = Node<NodeData, "campaign">;
export type CanvasEdge = Edge<Record<string, unknown>, "count">;
/** Declarations by type name (the newest, which the palette offers) and by `type@version`. */
export type TypeMap = Record<string, NodeTypeDecl>;

export const INPUT_HANDLE = "in";

export function newId(prefix: string): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${prefix}_${random[0].toString(36)}${random[1].toString(36)}`.slice(0, 24);
}

export const versionKey = (type: string, version: number) => `${type}@${version}`;

/** The newest declarations and any older ones, as one map (see TypeMap). */
export function typeMap(newest: NodeTypeDecl[], older: NodeTypeDecl[]): TypeMap {
  const map: TypeMap = {};
  for (const decl of [...older, ...newest]) map[versionKey(decl.type, decl.version)] = decl;
  for (const decl of newest) map[decl.type] = decl;
  return map;
}

/** The declaration a node is drawn and checked with: its version's, the newest when it names none. */
export function declOf(types: TypeMap, type: string, version?: number): NodeTypeDecl | undefined {
  return version === undefined ? types[type] : types[versionKey(type, version)];
}

/** The (type, version) pairs of these nodes whose declaration is not loaded yet (old versions). */
export function missingVersions(nodes: Array<{ type: string; version?: number }>, types: TypeMap): Array<[string, number]> {
  const wanted = new Map<string, [string, number]>();
  for (const { type, version } of nodes) {
    if (version === undefined || !types[type] || declOf(types, type, version)) continue;
    wanted.set(versionKey(type, version), [type, version]);
  }
  return [...wanted.values()];
}

export function portsOf(decl: NodeTypeDecl | undefined, settings: Record<string, unknown>): string[] {
  if (!decl) return [];
  if (decl.dynamic_ports) {
    // until the server answers (useDynamicPorts): the variants, as the engine reads them
    const filled = withDefaults(decl, settings);
    if (Array.isArray(filled.variants)) {
      return filled.variants.map((v) => String((v as { id?: unknown }).id ?? "")).filter(Boolean);
    }
  }
  return decl.ports;
}

/** Settings with the schema's defaults filled in (a new node starts with them). The schema
 * is also the root its `$ref`s point into (`#/$defs/...`, e.g. a split's nested rule groups). */
export function withDefaults(decl: NodeTypeDecl, settings: Record<string, unknown>): Record<string, unknown> {
  const schema = decl.schema as RJSFSchema;
  return getDefaultFormState(validator, schema, settings, schema) as Record<string, unknown>;
}

export function toCanvasNode(node: DocNode, types: TypeMap, index = 0): CanvasNode {
  const settings = node.settings ?? {};
  return {
    id: node.id,
    type: "campaign",
    position: node.position ?? { x: 80 + (index % 4) * 260, y: 80 + Math.floor(index / 4) * 170 },
    data: { nodeType: node.type, version: node.version, label: node.label, settings,
            ports: portsOf(declOf(types, node.type, node.version), settings) },
  };
}

export function toCanvasEdge(edge: DocEdge): CanvasEdge {
  return {
    id: edge.id,
    source: edge.source,
    sourceHandle: edge.source_port,
    target: edge.target,
    targetHandle: INPUT_HANDLE,
    type: "count",
  };
}

export function fromCanvasNode(node: CanvasNode): DocNode {
  const doc: DocNode = {
    id: node.id,
    type: node.data.nodeType,
    ...(node.data.version === undefined ? {} : { version: node.data.version }),
    settings: node.data.settings,
    position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
  };
  if (node.data.label) doc.label = node.data.label;
  return doc;
}

export function fromCanvasEdge(edge: CanvasEdge): DocEdge {
  return { id: edge.id, source: edge.source, source_port: edge.sourceHandle ?? "out", target: edge.target };
}

/** The document to save: the campaign's own fields plus the canvas graph. */
export function toDocument(meta: Omit<CampaignDocument, "nodes" | "edges">, nodes: CanvasNode[], edges: CanvasEdge[]): CampaignDocument {
  return { ...meta, nodes: nodes.map(fromCanvasNode), edges: edges.map(fromCanvasEdge) };
}

/**
 * Why a connection may not be made, or null when it may. Mirrors the server's rules so the
 * handle refuses at once: entry nodes have no input, no self-loops or duplicate edges, and a
 * cycle must pass through a delay node (wait, wait until date).
 */
export function connectionProblem(
  c: { source: string | null; sourceHandle?: string | null; target: string | null },
  nodes: CanvasNode[],
  edges: CanvasEdge[],
  types: TypeMap,
): string | null {
  if (!c.source || !c.target) return "incomplete";
  if (c.source === c.target) return "a node cannot feed itself";
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const target = byId.get(c.target);
  const declOfNode = (node: CanvasNode | undefined) => node && declOf(types, node.data.nodeType, node.data.version);
  if (!target || declOfNode(target)?.entry) return "a trigger has no input";
  if (edges.some((e) => e.source === c.source && e.sourceHandle === c.sourceHandle && e.target === c.target)) {
    return "already connected";
  }
  const isDelay = (id: string) => Boolean(declOfNode(byId.get(id))?.delay);
  if (isDelay(c.source) || isDelay(c.target)) return null;
  // would the new edge close a loop in which no node waits?
  const next = new Map<string, string[]>();
  for (const e of edges) if (!isDelay(e.target)) next.set(e.source, [...(next.get(e.source) ?? []), e.target]);
  const seen = new Set<string>();
  const stack = [c.target];
  while (stack.length) {
    const id = stack.pop()!;
    if (id === c.source) return "a loop needs a wait node in it";
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(next.get(id) ?? []));
  }
  return null;
}

/** A node as the marketer calls it in a list of nodes: its label, else its type's label, with a
 *  number when several nodes would read the same ("Send email 2"); never its internal id. */
export function nodeLabel(node: DocNode, all: DocNode[], types: TypeMap): string {
  const name = (n: DocNode) => n.label || types[n.type]?.label || n.type;
  const same = all.filter((n) => name(n) === name(node));
  return same.length > 1 ? `${name(node)} ${same.indexOf(node) + 1}` : name(node);
}
