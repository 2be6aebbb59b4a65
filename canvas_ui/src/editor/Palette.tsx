// The node types, grouped by category, as `GET /api/node-types` lists them: a type registered
// in Python shows up here with no change to the UI. Drag one onto the canvas, or click it and
// then click where it goes. Each type appears once, as its newest version: a new node gets it.

import { useMemo, useState } from "react";
import type { NodeTypeDecl } from "../types";

export const DRAG_TYPE = "application/x-campaign-canvas-node";
const CATEGORY_ORDER = ["trigger", "flow", "audience", "messaging"];

export function Palette(props: {
  types: NodeTypeDecl[];
  placing: string | null;
  onPick: (type: string | null) => void;
  hasEntry: boolean;
}) {
  const [query, setQuery] = useState("");
  const groups = useMemo(() => group(props.types, query), [props.types, query]);
  return (
    <aside className="cc-palette" data-testid="palette">
      <input type="search" placeholder="Search nodes" value={query} onChange={(e) => setQuery(e.target.value)}
             aria-label="Search node types" />
      {groups.map(([category, types]) => (
        <section key={category}>
          <h4>{category}</h4>
          {types.map((decl) => (
            <div
              key={decl.type}
              className={`cc-palette-item cat-${decl.category}${props.placing === decl.type ? " placing" : ""}`}
              data-testid="palette-item"
              data-node-type={decl.type}
              data-node-version={decl.version}
              title={decl.description || decl.label}
              draggable
              role="button"
              tabIndex={0}
              onDragStart={(event) => {
                event.dataTransfer.setData(DRAG_TYPE, decl.type);
                event.dataTransfer.effectAllowed = "move";
              }}
              onClick={() => props.onPick(props.placing === decl.type ? null : decl.type)}
              onKeyDown={(event) => event.key === "Enter" && props.onPick(decl.type)}
            >
              {decl.label}
              {decl.entry && props.hasEntry && <span className="cc-hint" title="A campaign has one trigger"> ·1</span>}
            </div>
          ))}
        </section>
      ))}
      {props.placing && <p className="cc-hint">Click on the canvas to place it; Esc cancels.</p>}
    </aside>
  );
}

function group(types: NodeTypeDecl[], query: string): Array<[string, NodeTypeDecl[]]> {
  const q = query.trim().toLowerCase();
  const byCategory = new Map<string, NodeTypeDecl[]>();
  for (const decl of types) {
    if (q && !`${decl.label} ${decl.type} ${decl.description}`.toLowerCase().includes(q)) continue;
    byCategory.set(decl.category, [...(byCategory.get(decl.category) ?? []), decl]);
  }
  const rank = (c: string) => (CATEGORY_ORDER.indexOf(c) + CATEGORY_ORDER.length + 1) % (CATEGORY_ORDER.length + 1);
  return [...byCategory.entries()].sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
}
