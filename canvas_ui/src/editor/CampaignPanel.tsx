// The side panel when no node is selected: the campaign's own fields (description, tags,
// goal, stop events, controls) and its totals.

import type { RJSFSchema, WidgetProps } from "@rjsf/utils";
import { useMemo, useState } from "react";
import type { Campaign, CampaignSettings, CampaignStats, ExitWhen, Problem } from "../types";
import { count } from "./overlay";
import type { Meta } from "./useCampaign";
import { useValidation } from "./useChecks";
import { ResourceSelect, type FormContext } from "./widgets";

const list = (text: string) => text.split(",").map((s) => s.trim()).filter(Boolean);

export function CampaignPanel(props: { meta: Meta; onChange: (meta: Meta) => void; readOnly: boolean; campaign: Campaign | null; stats: CampaignStats | null }) {
  const { meta } = props;
  const goal: { event?: string; within?: string } = meta.goal ?? {};
  const set = (patch: Partial<Meta>) => props.onChange({ ...meta, ...patch });
  const setGoal = (patch: Partial<typeof goal>) => {
    const next = { ...goal, ...patch };
    const { goal: _old, ...rest } = meta;
    props.onChange(next.event ? { ...rest, goal: { event: next.event, ...(next.within ? { within: next.within } : {}) } } : rest);
  };
  const problems = useMetaProblems(meta);
  return (
    <aside className="cc-settings" data-testid="campaign-panel">
      <header><h3>Campaign</h3></header>
      {props.stats && (
        <div className="cc-totals" data-testid="campaign-totals">
          <div><b>{count(props.stats.entered)}</b><span>entered</span></div>
          <div><b>{count(props.stats.converted)}</b><span>converted</span></div>
        </div>
      )}
      <label className="cc-field"><span>Description</span>
        <textarea rows={3} value={meta.description ?? ""} disabled={props.readOnly} onChange={(e) => set({ description: e.target.value })} />
      </label>
      <label className="cc-field"><span>Tags (comma-separated)</span>
        <input value={(meta.tags ?? []).join(", ")} disabled={props.readOnly} onChange={(e) => set({ tags: list(e.target.value) })} />
      </label>
      <fieldset className="cc-fieldset">
        <legend>Goal (a conversion)</legend>
        <label className="cc-field"><span>Event</span>
          <input placeholder="e.g. purchase" value={goal.event ?? ""} disabled={props.readOnly} onChange={(e) => setGoal({ event: e.target.value })} />
        </label>
        <label className="cc-field"><span>Within</span>
          <input placeholder="e.g. 7d" value={goal.within ?? ""} disabled={props.readOnly || !goal.event} onChange={(e) => setGoal({ within: e.target.value })} />
        </label>
        <Problems problems={problems} under="/goal" testId="campaign-goal-problems" />
      </fieldset>
      <label className="cc-field"><span>Stop events (comma-separated): a customer who sends one leaves</span>
        <input value={(meta.stop_events ?? []).join(", ")} disabled={props.readOnly}
               onChange={(e) => set({ stop_events: list(e.target.value) })} />
      </label>
      <ControlsFieldset settings={meta.settings ?? {}} hasGoal={Boolean(goal.event)} readOnly={props.readOnly} problems={problems}
                        onChange={(settings) => {
                          const { settings: _old, ...rest } = meta;
                          props.onChange(Object.keys(settings).length ? { ...rest, settings } : rest);
                        }} />
      {props.campaign?.status_reason && <p className="cc-field-error">{props.campaign.status_reason}</p>}
      <p className="cc-hint">Select a node to edit its settings. Drag from a port at the bottom of a node to the top of another to connect them.</p>
    </aside>
  );
}

/**
 * The campaign controls (engine/core/controls.py), written into `settings` next to its other keys
 * (e.g. `timezone`). A control left empty (or "never") has no key at all, so documents stay
 * as clean as they were.
 */
function ControlsFieldset(props: {
  settings: CampaignSettings; hasGoal: boolean; readOnly: boolean; problems: Problem[];
  onChange: (settings: CampaignSettings) => void;
}) {
  const { settings } = props;
  const cap = settings.frequency_cap;
  const exit = settings.exit;
  const when: ExitWhen = exit?.when ?? "never";
  // the period chosen before a number is typed (the cap is stored whole, or not at all)
  const [perDraft, setPerDraft] = useState<"day" | "week">("day");
  const per = cap?.per ?? perDraft;
  const put = <K extends keyof CampaignSettings>(key: K, value: CampaignSettings[K] | undefined) => {
    const { [key]: _old, ...rest } = settings;
    props.onChange(value === undefined ? rest : { ...rest, [key]: value });
  };
  const setCap = (messages: number | undefined, period: "day" | "week") =>
    put("frequency_cap", messages === undefined ? undefined : { messages, per: period });
  const setExit = (next: ExitWhen, segmentId?: number) =>
    put("exit", next === "never" ? undefined : { when: next, ...(next === "segment" && segmentId !== undefined ? { segment_id: segmentId } : {}) });
  return (
    <fieldset className="cc-fieldset cc-controls" data-testid="campaign-controls">
      <legend>Controls</legend>
      <label className="cc-field"><span>Send at most N messages a minute (empty: no limit)</span>
        <input id="campaign-send-rate" data-testid="campaign-send-rate" type="number" min={1} step={1} placeholder="no limit"
               value={settings.send_rate_per_minute ?? ""} disabled={props.readOnly}
               onChange={(e) => put("send_rate_per_minute", numberOf(e.target.value))} />
      </label>
      <Problems problems={props.problems} under="/settings/send_rate_per_minute" />
      <div className="cc-field">
        <span>Frequency cap: at most N messages to a customer (from all campaigns) per</span>
        <div className="cc-inline">
          <input id="campaign-cap-messages" data-testid="campaign-cap-messages" type="number" min={1} max={1000} step={1}
                 placeholder="no cap" aria-label="Frequency cap: messages" value={cap?.messages ?? ""} disabled={props.readOnly}
                 onChange={(e) => setCap(numberOf(e.target.value), per)} />
          <select id="campaign-cap-per" data-testid="campaign-cap-per" aria-label="Frequency cap: per" value={per} disabled={props.readOnly}
                  onChange={(e) => {
                    const period = e.target.value as "day" | "week";
                    setPerDraft(period);
                    if (cap) setCap(cap.messages, period);
                  }}>
            <option value="day">day</option>
            <option value="week">week</option>
          </select>
        </div>
        {cap && settings.transactional && <span className="cc-hint">A transactional campaign is never capped.</span>}
        <Problems problems={props.problems} under="/settings/frequency_cap" />
      </div>
      <label className="cc-check">
        <input id="campaign-transactional" data-testid="campaign-transactional" type="checkbox" checked={settings.transactional === true}
               disabled={props.readOnly} onChange={(e) => put("transactional", e.target.checked ? true : undefined)} />
        <span>Transactional (receipts, password resets: never capped)</span>
      </label>
      <Problems problems={props.problems} under="/settings/transactional" />
      <label className="cc-field"><span>Exit: a journey ends early</span>
        <select id="campaign-exit" data-testid="campaign-exit" value={when} disabled={props.readOnly}
                onChange={(e) => setExit(e.target.value as ExitWhen, exit?.segment_id)}>
          <option value="never">never</option>
          <option value="goal">when the goal is met</option>
          <option value="segment">when the customer leaves a segment</option>
        </select>
      </label>
      {when === "goal" && !props.hasGoal && <p className="cc-hint">Set the goal above: it says when a journey ends.</p>}
      {when === "segment" && (
        <label className="cc-field" htmlFor="campaign-exit-segment"><span>Segment</span>
          <SegmentSelect id="campaign-exit-segment" value={exit?.segment_id} disabled={props.readOnly}
                         onChange={(segmentId) => setExit("segment", segmentId)} />
        </label>
      )}
      <Problems problems={props.problems} under="/settings/exit" />
    </fieldset>
  );
}

const SEGMENTS_SCHEMA: RJSFSchema = { type: "integer", "x-resource": "segments" } as RJSFSchema;
const NO_NODES: FormContext = { nodes: [], nodeLabel: (node) => node.id, channel: null };

/** The settings forms' `x-resource` dropdown (widgets.tsx), listing `/api/segments`: given
 *  just the props it reads, as a settings form would give them. */
function SegmentSelect(props: { id: string; value: number | undefined; disabled: boolean; onChange: (id: number | undefined) => void }) {
  const widget = {
    id: props.id, value: props.value, disabled: props.disabled, readonly: false, schema: SEGMENTS_SCHEMA,
    registry: { formContext: NO_NODES }, onChange: (value: unknown) => props.onChange(typeof value === "number" ? value : undefined),
  } as unknown as WidgetProps<unknown, RJSFSchema, FormContext>;
  return <ResourceSelect {...widget} />;
}

/** The server's problems with the campaign's own fields (the nodes' are on the nodes): the
 *  editor validates the whole document; this asks about the fields alone, as they change. */
function useMetaProblems(meta: Meta): Problem[] {
  const text = useMemo(() => JSON.stringify({ ...meta, nodes: [], edges: [] }), [meta]);
  return useValidation(text).problems;
}

/** The messages of the problems at `under` or inside it. */
function Problems(props: { problems: Problem[]; under: string; testId?: string }) {
  const found = props.problems.filter((p) => p.pointer === props.under || p.pointer.startsWith(`${props.under}/`));
  if (!found.length) return null;
  return (
    <ul className="cc-problems" data-testid={props.testId} data-pointer={props.under}>
      {found.map((p, i) => <li key={i} className={p.severity}>{p.message}</li>)}
    </ul>
  );
}

/** A number input's value as a number; undefined when empty (or not a number yet). */
function numberOf(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}
