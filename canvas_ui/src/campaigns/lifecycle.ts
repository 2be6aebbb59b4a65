// Which buttons a row offers, following engine/journeys/campaigns.py (launch, pause, resume, stop, delete).

import type { CampaignStatus } from "../types";

export type LifecycleAction = "launch" | "pause" | "resume" | "stop";
export type RowAction = LifecycleAction | "clone" | "delete";

export const ACTION_LABEL: Record<RowAction, string> = {
  launch: "Launch",
  pause: "Pause",
  resume: "Resume",
  stop: "Stop",
  clone: "Clone",
  delete: "Delete",
};

const LIFECYCLE: Record<CampaignStatus, LifecycleAction[]> = {
  draft: ["launch"],
  // the server pauses only a running campaign; a scheduled one is cancelled with stop
  scheduled: ["stop"],
  active: ["pause", "stop"],
  paused: ["resume", "stop"],
  suspended: ["resume", "stop"],
  stopped: [],
  finished: [],
};

/** engine/journeys/campaigns.py DELETABLE: anything that may still move customers must be stopped first */
const DELETABLE: CampaignStatus[] = ["draft", "stopped", "finished"];

export const lifecycleActions = (status: CampaignStatus): LifecycleAction[] => LIFECYCLE[status] ?? [];
export const canDelete = (status: CampaignStatus): boolean => DELETABLE.includes(status);

/** Actions that cannot be taken back ask first. */
export function confirmation(action: RowAction, name: string): { title: string; message: string; danger: boolean } | null {
  switch (action) {
    case "delete":
      return {
        title: "Delete campaign?",
        message: `“${name}” will be deleted with its versions, journeys and statistics. This cannot be undone.`,
        danger: true,
      };
    case "stop":
      return {
        title: "Stop campaign?",
        message: `Every journey in “${name}” ends now and no more messages are sent. A stopped campaign cannot be resumed.`,
        danger: true,
      };
    case "launch":
      return {
        title: "Launch campaign?",
        message: `“${name}” goes live now: its audience enters and messages start going out.`,
        danger: false,
      };
    default:
      return null;
  }
}
