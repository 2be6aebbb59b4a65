// Form widgets for references: a stored thing (`x-resource`: segments, templates...) or
// another node of this campaign (`x-node-ref`), offered as dropdowns instead of bare ids.

import type { RJSFSchema, UiSchema, WidgetProps } from "@rjsf/utils";
import { useEffect, useState } from "react";
import { api } from "../api";
import type { DocNode, JSONSchema } from "../types";

export interface FormContext {
  nodes: DocNode[];
  nodeLabel: (node: DocNode) => string;
  channel: string | null;
}

type Named = { id: number; name: string; channel?: string };
const CHANNEL_SCOPED = new Set(["templates", "providers"]);

/** A uiSchema that puts our widgets on reference fields and text areas on long text. */
export function uiSchemaFor(schema: JSONSchema): UiSchema {
  const ui: UiSchema = {};
  const properties = (schema.properties ?? {}) as Record<string, JSONSchema>;
  for (const [name, property] of Object.entries(properties)) {
    if (property["x-resource"]) ui[name] = { "ui:widget": "resource" };
    else if (property["x-node-ref"]) ui[name] = { "ui:widget": "nodeRef" };
    else if (property.type === "object") ui[name] = uiSchemaFor(property);
    else if (property.type === "string" && Number(property.maxLength ?? 0) > 300 && !property.enum) {
      ui[name] = { "ui:widget": "textarea", "ui:options": { rows: 4 } };
    }
  }
  return ui;
}

export function ResourceSelect(props: WidgetProps<unknown, RJSFSchema, FormContext>) {
  const resource = String(props.schema["x-resource"]);
  const channel = props.registry.formContext?.channel;
  const [items, setItems] = useState<Named[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const query = CHANNEL_SCOPED.has(resource) && channel ? `?channel=${encodeURIComponent(channel)}` : "";
    api.get<{ items: Named[] }>(`/api/${resource}${query}`).then((r) => setItems(r.items), (e) => setError(String(e.message)));
  }, [resource, channel]);
  const known = items?.some((item) => item.id === props.value);
  return (
    <>
      <select id={props.id} value={props.value ?? ""} disabled={props.disabled || props.readonly}
              onChange={(e) => props.onChange(e.target.value === "" ? undefined : Number(e.target.value))}>
        <option value="">{items ? "— choose —" : "loading…"}</option>
        {items?.map((item) => <option key={item.id} value={item.id}>{item.name} (#{item.id})</option>)}
        {props.value != null && items && !known && <option value={String(props.value)}>#{String(props.value)} (not found)</option>}
      </select>
      {error && <div className="cc-field-error">{error}</div>}
    </>
  );
}

export function NodeRefSelect(props: WidgetProps<unknown, RJSFSchema, FormContext>) {
  const context = props.registry.formContext;
  const wanted = String(props.schema["x-node-ref"]);
  const choices = (context?.nodes ?? []).filter((node) => node.type === wanted);
  return (
    <select id={props.id} value={String(props.value ?? "")} disabled={props.disabled || props.readonly}
            onChange={(e) => props.onChange(e.target.value || undefined)}>
      <option value="">— choose a node —</option>
      {choices.map((node) => <option key={node.id} value={node.id}>{context.nodeLabel(node)}</option>)}
      {props.value != null && props.value !== "" && !choices.some((n) => n.id === props.value) && (
        <option value={String(props.value)}>the node it referred to is not on this canvas; pick another</option>
      )}
    </select>
  );
}

export const widgets = { resource: ResourceSelect, nodeRef: NodeRefSelect };
