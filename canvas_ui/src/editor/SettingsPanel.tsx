// The selected node's settings, in a form generated from its type's JSON Schema (so a custom
// node type gets its form for free), with the schema's errors inline as you type and the
// server's checks beside them. The schema is the one of the node's own version of its type;
// a node on an older version says so, and offers an upgrade when migrations lead to the newest.

import Form from "@rjsf/core";
import type { ErrorSchema, RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { useEffect, useMemo, useRef } from "react";
import type { DocNode, NodeTypeDecl, Problem } from "../types";
import type { CanvasNode } from "./graph";
import { TemplateHelper } from "./TemplateHelper";
import { uiSchemaFor, widgets, type FormContext } from "./widgets";

const ID_PREFIX = "settings";
const ID_SEPARATOR = ".";
/** schema errors the form already shows inline, so the server's copy of them is not repeated */
const SHOWN_INLINE = new Set(["invalid_settings"]);

export function SettingsPanel(props: {
  node: CanvasNode;
  /** the declaration of the node's version */
  decl: NodeTypeDecl | undefined;
  /** the newest version of its type */
  newest: NodeTypeDecl | undefined;
  onUpgrade: () => void;
  upgrading: boolean;
  problems: Problem[];
  /** a problem's pointer whose field to focus (a click in the problem list), with a counter so a second click focuses again */
  focus: { pointer: string; at: number } | null;
  nodes: DocNode[];
  /** what the marketer calls a node: its label, else its type's */
  nodeLabel: (node: DocNode) => string;
  readOnly: boolean;
  onSettings: (settings: Record<string, unknown>) => void;
  onLabel: (label: string) => void;
  onClose: () => void;
}) {
  const { node, decl } = props;
  const uiSchema = useMemo(() => ({ ...uiSchemaFor(decl?.schema ?? {}), "ui:submitButtonOptions": { norender: true } }), [decl]);
  const lastField = useRef<string | null>(null);
  const form = useRef<Form>(null);
  // a node opened with missing or bad settings shows what is wrong at once, not after an edit
  useEffect(() => { form.current?.validateForm(); }, [node.id]);
  useEffect(() => { if (props.focus) focusField(props.focus.pointer); }, [props.focus]);
  const formContext: FormContext = useMemo(() => ({
    nodes: props.nodes,
    nodeLabel: props.nodeLabel,
    channel: decl?.template_channel ?? null,
  }), [props.nodes, props.nodeLabel, decl]);
  const extraErrors = useMemo(() => serverErrors(props.problems), [props.problems]);

  const insertTag = (tag: string) => {
    const id = lastField.current;
    const field = id ? (document.getElementById(id) as HTMLInputElement | HTMLTextAreaElement | null) : null;
    if (!id || !field) return;
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    const value = field.value.slice(0, start) + tag + field.value.slice(end);
    props.onSettings(setPath(node.data.settings, id.split(ID_SEPARATOR).slice(1), value));
    requestAnimationFrame(() => {
      field.focus();
      field.setSelectionRange(start + tag.length, start + tag.length);
    });
  };

  return (
    <aside className="cc-settings" data-testid="settings-panel" aria-label="Node settings">
      <header>
        <div>
          <div className="cc-node-category">{decl?.category}</div>
          <h3>{decl?.label ?? props.newest?.label ?? node.data.nodeType}</h3>
          <code className="cc-node-id" hidden>{node.id}</code>
        </div>
        <button type="button" className="link" onClick={props.onClose} aria-label="Close settings">Close</button>
      </header>
      {decl?.description && <p className="cc-hint">{decl.description}</p>}
      <VersionNote node={props.node} decl={decl} newest={props.newest} readOnly={props.readOnly}
                   upgrading={props.upgrading} onUpgrade={props.onUpgrade} />
      <label className="cc-field">
        <span>Label</span>
        <input data-testid="node-label-input" value={node.data.label ?? ""} placeholder={decl?.label}
               disabled={props.readOnly} onChange={(e) => props.onLabel(e.target.value)} />
      </label>
      {props.problems.length > 0 && (
        <ul className="cc-problems" data-testid="settings-problems">
          {props.problems.map((p, i) => (
            <li key={i} className={p.severity} onClick={() => focusField(p.pointer)}>{p.message}</li>
          ))}
        </ul>
      )}
      {decl ? (
        <div onFocus={(e) => { if (e.target.id.startsWith(ID_PREFIX + ID_SEPARATOR)) lastField.current = e.target.id; }}>
          <Form
            key={`${node.id}@${decl.version}`}
            ref={form}
            schema={decl.schema as RJSFSchema}
            uiSchema={uiSchema}
            formData={node.data.settings}
            validator={validator}
            widgets={widgets}
            formContext={formContext}
            extraErrors={extraErrors}
            liveValidate="onChange"
            showErrorList={false}
            noHtml5Validate
            idPrefix={ID_PREFIX}
            idSeparator={ID_SEPARATOR}
            disabled={props.readOnly}
            onChange={(event) => props.onSettings((event.formData ?? {}) as Record<string, unknown>)}
          />
        </div>
      ) : (
        <p className="cc-field-error">
          {props.newest ? `Version ${node.data.version} of this node type` : "This node type"} is not installed on the
          server; its settings cannot be edited.
        </p>
      )}
      {decl?.template_channel && !props.readOnly && (
        <TemplateHelper channel={decl.template_channel} settings={node.data.settings} onInsert={insertTag} />
      )}
    </aside>
  );
}

/** Which version of its type an older node is on, and its upgrade when one exists. */
function VersionNote(props: {
  node: CanvasNode;
  decl: NodeTypeDecl | undefined;
  newest: NodeTypeDecl | undefined;
  readOnly: boolean;
  upgrading: boolean;
  onUpgrade: () => void;
}) {
  const { node, decl, newest } = props;
  if (node.data.version === undefined || !newest || node.data.version === newest.version) return null;
  return (
    <div className="cc-version" data-testid="node-version-note">
      <div>
        Version {node.data.version} of this node type (the newest is {newest.version}). It keeps working as it is.
      </div>
      {decl?.upgrade_to ? (
        !props.readOnly && (
          <button type="button" data-testid="upgrade-node" disabled={props.upgrading} onClick={props.onUpgrade}>
            Upgrade to version {decl.upgrade_to}
          </button>
        )
      ) : (
        decl && <div className="cc-hint">No upgrade to version {newest.version} is available for it.</div>
      )}
    </div>
  );
}

/**
 * Put the cursor in the form field a problem points at (`/nodes/3/settings/rules/0/op`, the
 * form's `settings.rules.0.op`), or in the nearest enclosing field the form has. Waits a frame:
 * the form of a node just selected is not drawn yet.
 */
function focusField(pointer: string): void {
  const at = pointer.indexOf("/settings");
  if (at < 0) return;
  const parts = pointer.slice(at + 1).split("/");
  requestAnimationFrame(() => {
    for (let n = parts.length; n >= 2; n--) {
      const id = [ID_PREFIX, ...parts.slice(1, n)].join(ID_SEPARATOR);
      const field = document.getElementById(id) ?? document.querySelector<HTMLElement>(`[id^="${CSS.escape(id + ID_SEPARATOR)}"]`);
      if (field) {
        field.scrollIntoView({ block: "center" });
        field.focus();
        return;
      }
    }
  });
}

/** The server's own checks (not the schema's, shown inline already) as the form's error tree. */
function serverErrors(problems: Problem[]): ErrorSchema {
  const tree: Record<string, unknown> = {};
  for (const problem of problems) {
    const at = problem.pointer.indexOf("/settings/");
    if (SHOWN_INLINE.has(problem.code) || at < 0) continue;
    let branch = tree;
    for (const part of problem.pointer.slice(at + "/settings/".length).split("/")) {
      branch = (branch[part] ??= {}) as Record<string, unknown>;
    }
    ((branch.__errors ??= []) as string[]).push(problem.message);
  }
  return tree as ErrorSchema;
}

function setPath(value: Record<string, unknown>, path: string[], leaf: unknown): Record<string, unknown> {
  const [head, ...rest] = path;
  if (head === undefined) return value;
  const child = (value[head] ?? {}) as Record<string, unknown>;
  return { ...value, [head]: rest.length ? setPath(child, rest, leaf) : leaf };
}
