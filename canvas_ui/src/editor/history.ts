// Undo and redo: snapshots of the graph taken before each change a user would call one step
// (a drop, a connection, a deletion, a drag, a paste, a burst of typing in the settings).

import { useCallback, useRef, useState } from "react";
import type { CanvasEdge, CanvasNode } from "./graph";

export interface Snapshot {
  nodes: CanvasNode[];
  edges: CanvasEdge[];
}

const LIMIT = 200;
/** typing in the same node's settings within this many ms is one undo step */
const COALESCE_MS = 1000;

export function useHistory(current: () => Snapshot, restore: (s: Snapshot) => void) {
  const past = useRef<Snapshot[]>([]);
  const future = useRef<Snapshot[]>([]);
  const lastKey = useRef<{ key: string; at: number } | null>(null);
  const [, setVersion] = useState(0);
  const changed = () => setVersion((v) => v + 1);

  /** Remember the graph as it is, before a change. `key` merges a burst of edits into one step. */
  const record = useCallback((key?: string) => {
    const now = Date.now();
    if (key && lastKey.current?.key === key && now - lastKey.current.at < COALESCE_MS) {
      lastKey.current.at = now;
      return;
    }
    lastKey.current = key ? { key, at: now } : null;
    past.current = [...past.current.slice(-LIMIT + 1), unselected(current())];
    future.current = [];
    changed();
  }, [current]);

  const step = useCallback((from: React.RefObject<Snapshot[]>, to: React.RefObject<Snapshot[]>) => {
    const snapshot = from.current.pop();
    if (!snapshot) return;
    to.current.push(unselected(current()));
    lastKey.current = null;
    restore(snapshot);
    changed();
  }, [current, restore]);

  return {
    record,
    undo: useCallback(() => step(past, future), [step]),
    redo: useCallback(() => step(future, past), [step]),
    canUndo: past.current.length > 0,
    canRedo: future.current.length > 0,
  };
}

function unselected(s: Snapshot): Snapshot {
  return {
    nodes: s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)),
    edges: s.edges.map((e) => (e.selected ? { ...e, selected: false } : e)),
  };
}
