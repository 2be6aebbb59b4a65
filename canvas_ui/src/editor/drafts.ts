// Unsaved changes kept in this browser (localStorage) the moment they are made, so a reload,
// a crash or a closed tab loses nothing: the editor offers them back when the campaign is
// opened again. One draft per saved campaign, and one per tab for a campaign never saved
// (two tabs each drawing a new campaign must not overwrite each other's).

import type { CampaignDocument } from "../types";

export interface LocalDraft {
  document: CampaignDocument;
  /** the version the changes were made on (null: a campaign never saved) */
  baseVersion: number | null;
  /** when they were last written, ms since the epoch */
  savedAt: number;
}

const PREFIX = "cc-draft:";
const TAB_KEY = "cc-tab-id";

/** This tab's id: kept in sessionStorage, so it survives a reload of the tab and no other tab has it. */
export function tabId(session: Storage = sessionStorage): string {
  let id = session.getItem(TAB_KEY);
  if (!id) {
    id = Math.random().toString(36).slice(2, 10);
    session.setItem(TAB_KEY, id);
  }
  return id;
}

/** Where the draft of this campaign (null: the new campaign of this tab) is kept. */
export function draftKey(campaignId: number | null, tab: string): string {
  return campaignId === null ? `${PREFIX}new:${tab}` : `${PREFIX}campaign:${campaignId}`;
}

/** The draft kept under `key`, or null (none, or not one of ours: unreadable text is ignored). */
export function readDraft(storage: Storage, key: string): LocalDraft | null {
  try {
    const draft = JSON.parse(storage.getItem(key) ?? "null") as LocalDraft | null;
    const doc = draft?.document;
    return doc && Array.isArray(doc.nodes) && Array.isArray(doc.edges) ? draft : null;
  } catch {
    return null;
  }
}

/** Keep `draft` under `key`. Returns false when the browser refuses (storage full, disabled):
 *  the editor then says the changes live only in this page. */
export function writeDraft(storage: Storage, key: string, draft: LocalDraft): boolean {
  try {
    storage.setItem(key, JSON.stringify(draft));
    return true;
  } catch {
    return false;
  }
}

export function dropDraft(storage: Storage, key: string): void {
  try {
    storage.removeItem(key);
  } catch {
    // nothing kept, nothing to drop
  }
}
