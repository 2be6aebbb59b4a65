// The editor's bar: the campaign's name and status, save and launch, the lifecycle buttons,
// and the canvas tools (undo, redo, layout, fit, copy, paste).

import { useEffect, useState } from "react";
import { Confirm } from "../Modal";
import { Link } from "../router";
import type { Campaign } from "../types";
import { onShared, sharedFragment } from "./clipboard";
import type { Meta } from "./useCampaign";

const mod = navigator.platform.toLowerCase().includes("mac") ? "⌘" : "Ctrl+";

export function Toolbar(props: {
  meta: Meta;
  onName: (name: string) => void;
  campaign: Campaign | null;
  dirty: boolean;
  busy: boolean;
  readOnly: boolean;
  errors: number;
  warnings: number;
  /** a campaign still in draft (or never saved): it saves even with errors */
  isDraft: boolean;
  /** how the last autosave of a draft went */
  autosave: { kind: "ok" | "error"; text: string } | null;
  canUndo: boolean;
  canRedo: boolean;
  onUndo: () => void;
  onRedo: () => void;
  onSave: () => void;
  onLaunch: () => void;
  onAction: (action: "pause" | "resume" | "stop") => void;
  onLayout: () => void;
  onFit: () => void;
  onCopy: () => void;
  onPaste: () => void;
}) {
  const status = props.campaign?.status ?? "draft";
  const [confirmStop, setConfirmStop] = useState(false);
  const [canPaste, setCanPaste] = useState(() => sharedFragment() !== null);
  useEffect(() => onShared(() => setCanPaste(true)), []);
  const launchable = status === "draft" || status === "scheduled";
  const edit = !props.readOnly;
  return (
    <div className="cc-toolbar" data-testid="toolbar">
      <Link to="/" className="cc-back" title="All campaigns">←</Link>
      <input className="cc-name" aria-label="Campaign name" data-testid="campaign-name-input" value={props.meta.name}
             disabled={!edit} onChange={(e) => props.onName(e.target.value)} />
      <span className={`status status-${status}`} data-testid="editor-status" title={props.campaign?.status_reason ?? undefined}>{status}</span>
      {props.campaign?.version && <span className="cc-hint">v{props.campaign.version}</span>}
      {props.dirty && <span className="cc-hint" data-testid="unsaved">{props.campaign ? "unsaved changes" : "not saved yet"}</span>}
      {props.autosave && (
        <span className={props.autosave.kind === "error" ? "cc-count-errors" : "cc-hint"} data-testid="autosave" role="status">{props.autosave.text}</span>
      )}
      <span className={props.errors ? "cc-count-errors" : "cc-count-ok"} data-testid="problem-count"
            title="Problems the server found in this campaign">
        {props.errors ? `${props.errors} error${props.errors > 1 ? "s" : ""}` : "no errors"}
        {props.warnings ? `, ${props.warnings} warning${props.warnings > 1 ? "s" : ""}` : ""}
      </span>
      <span className="spacer" />
      {props.campaign && (
        <Link to={`/campaigns/${props.campaign.id}/report`} className="button-link" testId="editor-report-link"
              title="The campaign's report: funnels, A/B results, uplift, every step">Report</Link>
      )}
      <div className="cc-tools">
        <button type="button" onClick={props.onUndo} disabled={!edit || !props.canUndo} title={`Undo (${mod}Z)`}>Undo</button>
        <button type="button" onClick={props.onRedo} disabled={!edit || !props.canRedo} title={`Redo (${mod}Shift+Z)`}>Redo</button>
        <button type="button" onClick={props.onLayout} disabled={!edit} title="Arrange the nodes top to bottom">Auto-layout</button>
        <button type="button" onClick={props.onFit} title="Show the whole campaign">Fit</button>
        <button type="button" onClick={props.onCopy} title={`Copy the selected nodes (${mod}C)`}>Copy</button>
        <button type="button" onClick={props.onPaste} disabled={!edit || !canPaste} title={`Paste nodes (${mod}V)`}>Paste</button>
      </div>
      {edit && (
        <div className="cc-tools">
          <button type="button" onClick={props.onSave} disabled={props.busy || (props.errors > 0 && !props.isDraft)} data-testid="save"
                  title={props.errors && !props.isDraft ? "Fix the errors first: a running campaign takes only a valid version"
                    : props.errors ? `Save as a draft, problems and all: fix them before launching (${mod}S)` : `Save without launching (${mod}S)`}>Save</button>
          {launchable && (
            <button type="button" className="primary" onClick={props.onLaunch} disabled={props.busy || props.errors > 0}
                    title={props.errors ? "Fix the errors first" : "Save and start the campaign"}>Save and launch</button>
          )}
          {(status === "active" || status === "scheduled") && <button type="button" onClick={() => props.onAction("pause")} disabled={props.busy}>Pause</button>}
          {(status === "paused" || status === "suspended") && <button type="button" onClick={() => props.onAction("resume")} disabled={props.busy}>Resume</button>}
          {["active", "paused", "scheduled", "suspended"].includes(status) && (
            <button type="button" className="danger" onClick={() => setConfirmStop(true)} disabled={props.busy}>Stop</button>
          )}
        </div>
      )}
      {confirmStop && (
        <Confirm title="Stop this campaign?" message="Customers still in it leave, and it cannot be started again (clone it instead)."
                 confirmLabel="Stop campaign" danger onCancel={() => setConfirmStop(false)}
                 onConfirm={() => { setConfirmStop(false); props.onAction("stop"); }} />
      )}
    </div>
  );
}
