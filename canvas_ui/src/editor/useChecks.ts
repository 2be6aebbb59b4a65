// What the server says about the graph as it is being drawn: its problems (debounced
// validation of the unsaved document) and the ports of nodes whose ports follow their settings.

import { useEffect, useRef, useState } from "react";
import { api } from "../api";
import type { Checked } from "../types";
import { declOf, type CanvasNode, type TypeMap } from "./graph";

const VALIDATE_AFTER_MS = 400;
const PORTS_AFTER_MS = 300;

const NOTHING_CHECKED: Checked = { problems: [], summaries: {}, port_labels: {} };

/** `documentText`: the document as JSON, made once per change by the editor (it also tells
 *  whether there is anything unsaved). The answer carries the problems and the node cards'
 *  summaries and port names, so a card says what its node does as the settings change. */
export function useValidation(documentText: string): Checked {
  const [checked, setChecked] = useState<Checked>(NOTHING_CHECKED);
  useEffect(() => {
    let current = true;
    const timer = setTimeout(() => {
      api.post<Checked>("/api/campaigns/validate", JSON.parse(documentText))
        .then((r) => current && setChecked({ ...NOTHING_CHECKED, ...r }), () => undefined);
    }, VALIDATE_AFTER_MS);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [documentText]);
  return checked;
}

/** Ask the server for the ports of dynamic-port nodes whenever their settings change. */
export function useDynamicPorts(nodes: CanvasNode[], types: TypeMap, apply: (id: string, ports: string[]) => void): void {
  const asked = useRef(new Map<string, string>());
  const dynamic = nodes.filter((n) => declOf(types, n.data.nodeType, n.data.version)?.dynamic_ports);
  const key = JSON.stringify(dynamic.map((n) => [n.id, n.data.nodeType, n.data.version, n.data.settings]));
  useEffect(() => {
    const timer = setTimeout(() => {
      for (const [id, type, version, settings] of JSON.parse(key) as Array<[string, string, number | null, unknown]>) {
        const question = JSON.stringify([type, version, settings]);
        if (asked.current.get(id) === question) continue;
        asked.current.set(id, question);
        // the ports of the node's own version (JSON turned an absent version into null)
        const body = version === null ? { settings } : { settings, version };
        api.post<{ ports: string[] }>(`/api/node-types/${encodeURIComponent(type)}/ports`, body)
          .then((r) => apply(id, r.ports), () => undefined);
      }
    }, PORTS_AFTER_MS);
    return () => clearTimeout(timer);
  }, [key, apply]);
}
