// The side panel when no node is selected: the campaign's own fields (description, tags,
// goal, stop events) and its totals.

import type { Campaign, CampaignStats } from "../types";
import { count } from "./overlay";
import type { Meta } from "./useCampaign";

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
      </fieldset>
      <label className="cc-field"><span>Stop events (comma-separated): a customer who sends one leaves</span>
        <input value={(meta.stop_events ?? []).join(", ")} disabled={props.readOnly}
               onChange={(e) => set({ stop_events: list(e.target.value) })} />
      </label>
      {props.campaign?.status_reason && <p className="cc-field-error">{props.campaign.status_reason}</p>}
      <p className="cc-hint">Select a node to edit its settings. Drag from a port at the bottom of a node to the top of another to connect them.</p>
    </aside>
  );
}
