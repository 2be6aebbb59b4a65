// Undo and redo: snapshots of the graph taken before each change a user would call one step
// (a drop, a connection, a deletion, a drag, a paste, a burst of typing in the settings).
// `UndoStack` is the pure part (unit-tested); `useHistory` binds it to the editor's state.

import { useCallback, useRef, useState } from "react";
import type { CanvasEdge, CanvasNode } from "./graph";

export interface Snapshot {
  nodes: CanvasNode[];
  edges: CanvasEdge[];
}

export const LIMIT = 200;
/** typing in the same node's settings within this many ms is one undo step */
export const COALESCE_MS = 1000;

export class UndoStack {
  private past: Snapshot[] = [];
  private future: Snapshot[] = [];
  private last: { key: string; at: number } | null = null;

  /** Remember `before` (the graph before a change). A `key` seen within COALESCE_MS of the
   * previous record with the same key merges into its step. Returns whether a step was added. */
  record(before: Snapshot, key?: string, now = Date.now()): boolean {
    if (key && this.last?.key === key && now - this.last.at < COALESCE_MS) {
      this.last.at = now;
      return false;
    }
    this.last = key ? { key, at: now } : null;
    this.past = [...this.past.slice(-LIMIT + 1), unselected(before)];
    this.future = [];
    return true;
  }

  /** The snapshot to restore for one step back (given the graph as it is now), or null. */
  undo(current: Snapshot): Snapshot | null {
    return this.step(this.past, this.future, current);
  }

  redo(current: Snapshot): Snapshot | null {
    return this.step(this.future, this.past, current);
  }

  get canUndo(): boolean {
    return this.past.length > 0;
  }

  get canRedo(): boolean {
    return this.future.length > 0;
  }

  private step(from: Snapshot[], to: Snapshot[], current: Snapshot): Snapshot | null {
    const snapshot = from.pop();
    if (!snapshot) return null;
    to.push(unselected(current));
    this.last = null;
    return snapshot;
  }
}

export function useHistory(current: () => Snapshot, restore: (s: Snapshot) => void) {
  const stack = useRef(new UndoStack()).current;
  const [, setVersion] = useState(0);
  const changed = () => setVersion((v) => v + 1);

  /** Remember the graph as it is, before a change. `key` merges a burst of edits into one step. */
  const record = useCallback((key?: string) => {
    if (stack.record(current(), key)) changed();
  }, [current, stack]);

  const apply = useCallback((snapshot: Snapshot | null) => {
    if (!snapshot) return;
    restore(snapshot);
    changed();
  }, [restore]);

  return {
    record,
    undo: useCallback(() => apply(stack.undo(current())), [apply, current, stack]),
    redo: useCallback(() => apply(stack.redo(current())), [apply, current, stack]),
    canUndo: stack.canUndo,
    canRedo: stack.canRedo,
  };
}

function unselected(s: Snapshot): Snapshot {
  return {
    nodes: s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)),
    edges: s.edges.map((e) => (e.selected ? { ...e, selected: false } : e)),
  };
}
