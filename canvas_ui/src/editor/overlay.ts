// What the canvas shows on top of the graph without being part of it: the node types, the
// server's problems per node, and the live counts. Nodes and edges read it from context so
// neither a validation nor a stats event touches the graph (or the undo history).

import { createContext, useContext } from "react";
import type { CampaignStats, Problem } from "../types";
import type { TypeMap } from "./graph";

export interface Overlay {
  types: TypeMap;
  problems: Record<string, Problem[]>;
  /** node id: the one-line summary of its settings (the server's words) */
  summaries: Record<string, string>;
  /** node id: {port: its name} where the name is not the port id */
  portLabels: Record<string, Record<string, string>>;
  stats: CampaignStats | null;
  deleteEdge: (id: string) => void;
  readOnly: boolean;
}

export const OverlayContext = createContext<Overlay>({
  types: {},
  problems: {},
  summaries: {},
  portLabels: {},
  stats: null,
  deleteEdge: () => undefined,
  readOnly: false,
});

export const useOverlay = () => useContext(OverlayContext);

export function problemsByNode(problems: Problem[]): Record<string, Problem[]> {
  const grouped: Record<string, Problem[]> = {};
  for (const problem of problems) if (problem.node_id) (grouped[problem.node_id] ??= []).push(problem);
  return grouped;
}

/** A port as a marketer reads it: its name when the node gives one, else its id in words
 *  ("delivered_not_opened" -> "delivered not opened"). */
export function portName(port: string, labels: Record<string, string> | undefined): string {
  return labels?.[port] ?? port.replace(/_/g, " ");
}

export const count = (n: number | undefined) => (n ?? 0).toLocaleString();
