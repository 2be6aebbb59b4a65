// Loading and saving one campaign: the node types (the newest of each, and the older versions
// its nodes are on), the stored document, its status, and the lifecycle buttons. "Save" keeps
// the campaign as it is; "Save and launch" starts it. Saves go one after another (a queue),
// so an autosave and a click never race each other to the server.

import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "../api";
import { navigate } from "../router";
import type { Campaign, CampaignDocument, NodeTypeDecl } from "../types";
import { draftKey, readDraft, tabId, type LocalDraft } from "./drafts";
import { missingVersions, typeMap } from "./graph";

export type Meta = Omit<CampaignDocument, "nodes" | "edges">;

export interface Loaded {
  /** the newest version of every type: the palette's */
  types: NodeTypeDecl[];
  /** the declarations of the older versions the document's nodes are on */
  oldTypes: NodeTypeDecl[];
  campaign: Campaign | null;
  document: CampaignDocument;
  /** unsaved changes this browser kept from an earlier visit, if any */
  draft: LocalDraft | null;
}

export const NEW_DOCUMENT: CampaignDocument = { name: "Untitled campaign", description: "", tags: [], nodes: [], edges: [] };

export function useLoad(campaignId: number | null): { loaded: Loaded | null; error: unknown } {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    Promise.all([
      api.get<NodeTypeDecl[]>("/api/node-types"),
      campaignId === null ? Promise.resolve(null) : api.get<Campaign>(`/api/campaigns/${campaignId}`),
    ]).then(async ([types, campaign]) => {
      const document = campaign?.document ?? structuredClone(NEW_DOCUMENT);
      const draft = readDraft(localStorage, draftKey(campaignId, tabId()));
      const nodes = [...document.nodes, ...(draft?.document.nodes ?? [])];
      const oldTypes = await loadVersions(missingVersions(nodes, typeMap(types, [])));
      if (live) setLoaded({ types, oldTypes, campaign, document, draft });
    }).catch((e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [campaignId]);
  return { loaded, error };
}

/**
 * The declarations of these old versions of node types, so that a node saved on one keeps
 * its form and ports. A version the server does not have is left out: the node then says
 * so, and validation names its `version`.
 */
export async function loadVersions(pairs: Array<[string, number]>): Promise<NodeTypeDecl[]> {
  const found = await Promise.all(pairs.map(([type, version]) =>
    api.get<NodeTypeDecl>(`/api/node-types/${encodeURIComponent(type)}/versions/${version}`).catch(() => null)));
  return found.filter((decl): decl is NodeTypeDecl => decl !== null);
}

export interface SaveOptions {
  /** start the campaign too */
  launch?: boolean;
  /** keep it even with errors (only a campaign still in draft; the server refuses otherwise) */
  draft?: boolean;
}

/** The campaign as saved, and the calls that change it. `editorKey`: the editor's React key,
 *  kept in the history entry when a first save moves it to the campaign's URL. */
export function useCampaignActions(initial: Campaign | null, editorKey: string) {
  const [campaign, setCampaign] = useState<Campaign | null>(initial);
  const latest = useRef(initial);
  latest.current = campaign;
  const queue = useRef<Promise<unknown>>(Promise.resolve());
  const save = useCallback((document: CampaignDocument, options: SaveOptions = {}): Promise<Campaign> => {
    const run = async () => {
      const params = new URLSearchParams();
      if (options.launch) params.set("launch", "true");
      if (options.draft) params.set("draft", "true");
      const query = params.size ? `?${params}` : "";
      const before = latest.current;
      const saved = before === null
        ? await api.post<Campaign>(`/api/campaigns${query}`, document)
        : await api.put<Campaign>(`/api/campaigns/${before.id}${query}`, document);
      latest.current = saved;
      setCampaign(saved);
      if (before === null) navigate(`/campaigns/${saved.id}`, true, { state: { editorKey }, force: true });
      return saved;
    };
    const next = queue.current.then(run, run);
    queue.current = next.catch(() => undefined);
    return next;
  }, [editorKey]);
  const act = useCallback(async (action: "pause" | "resume" | "stop" | "launch") => {
    if (!campaign) return;
    setCampaign(await api.post<Campaign>(`/api/campaigns/${campaign.id}/${action}`));
  }, [campaign]);
  return { campaign, setCampaign, save, act };
}
