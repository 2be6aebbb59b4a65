// What the canvas shows on top of the graph without being part of it: the node types, the
// server's problems per node, and the live counts. Nodes and edges read it from context so
// neither a validation nor a stats event touches the graph (or the undo history).

import { createContext, useContext } from "react";
import type { CampaignStats, Problem } from "../types";
import type { TypeMap } from "./graph";

export interface Overlay {
  types: TypeMap;
  problems: Record<string, Problem[]>;
  stats: CampaignStats | null;
  deleteEdge: (id: string) => void;
  readOnly: boolean;
}

export const OverlayContext = createContext<Overlay>({
  types: {},
  problems: {},
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

export const count = (n: number | undefined) => (n ?? 0).toLocaleString();
