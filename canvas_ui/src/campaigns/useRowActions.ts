// Row actions: the request each button makes, which row is busy, the confirmation asked for
// first, and what the user is told afterwards.

import { useCallback, useState } from "react";
import { api, ApiError, errorText } from "../api";
import type { Campaign } from "../types";
import { ACTION_LABEL, confirmation, type RowAction } from "./lifecycle";
import type { CampaignList } from "./useCampaignList";

export interface Notice {
  text: string;
  /** a campaign to offer an Open link for (a fresh clone) */
  openId?: number;
}

export interface RowActions {
  /** campaign id -> the action running on it */
  busy: Record<number, RowAction>;
  error: string | null;
  notice: Notice | null;
  /** a freshly cloned campaign, highlighted when it shows in the list */
  highlight: number | null;
  pending: { action: RowAction; campaign: Campaign } | null;
  /** click on a row button: asks first when the action cannot be undone */
  request: (action: RowAction, campaign: Campaign) => void;
  confirm: () => void;
  cancel: () => void;
  dismissError: () => void;
  dismissNotice: () => void;
}

const base = (c: Campaign) => `/api/campaigns/${c.id}`;

export function useRowActions(list: CampaignList): RowActions {
  const [busy, setBusy] = useState<Record<number, RowAction>>({});
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [highlight, setHighlight] = useState<number | null>(null);
  const [pending, setPending] = useState<RowActions["pending"]>(null);
  const { applyCampaign, applyTotals, reload } = list;

  const execute = useCallback(async (action: RowAction, campaign: Campaign): Promise<void> => {
    if (action === "clone") {
      const copy = await api.post<Campaign>(`${base(campaign)}/clone`);
      setHighlight(copy.id);
      setNotice({ text: `Cloned “${campaign.name}” as “${copy.name}”.`, openId: copy.id });
      reload();
    } else if (action === "delete") {
      await api.delete(base(campaign));
      setNotice({ text: `Deleted “${campaign.name}”.` });
      reload();
    } else {
      const answer = await api.post<Campaign>(`${base(campaign)}/${action}`);
      applyCampaign(answer);
      if (action === "launch" && answer.entered) {
        applyTotals({ campaign_id: campaign.id, entered: Math.max(answer.entered, campaign.entered ?? 0), converted: campaign.converted ?? 0 });
      }
    }
  }, [applyCampaign, applyTotals, reload]);

  const perform = useCallback(async (action: RowAction, campaign: Campaign) => {
    setBusy((b) => ({ ...b, [campaign.id]: action }));
    setError(null);
    setNotice(null);
    try {
      await execute(action, campaign);
    } catch (e) {
      setError(`Could not ${ACTION_LABEL[action].toLowerCase()} “${campaign.name}”: ${errorText(e)}`);
      // gone, or changed by someone else meanwhile: show how things are now
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) reload();
    } finally {
      setBusy(({ [campaign.id]: _done, ...rest }) => rest);
    }
  }, [execute, reload]);

  // stable while the dialog is open, so live updates re-rendering the page leave it (and its focus) alone
  const confirm = useCallback(() => {
    if (pending) void perform(pending.action, pending.campaign);
    setPending(null);
  }, [pending, perform]);
  const cancel = useCallback(() => setPending(null), []);

  return {
    busy,
    error,
    notice,
    highlight,
    pending,
    request: (action, campaign) =>
      confirmation(action, campaign.name) ? setPending({ action, campaign }) : void perform(action, campaign),
    confirm,
    cancel,
    dismissError: () => setError(null),
    dismissNotice: () => setNotice(null),
  };
}
