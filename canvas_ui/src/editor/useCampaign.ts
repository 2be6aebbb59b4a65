// Loading and saving one campaign: the node types (the newest of each, and the older versions
// its nodes are on), the stored document, its status, and the lifecycle buttons. "Save" keeps
// the campaign as it is; "Save and launch" starts it.

import { useCallback, useEffect, useState } from "react";
import { api } from "../api";
import { navigate } from "../router";
import type { Campaign, CampaignDocument, NodeTypeDecl } from "../types";
import { missingVersions, typeMap } from "./graph";

export type Meta = Omit<CampaignDocument, "nodes" | "edges">;

export interface Loaded {
  /** the newest version of every type: the palette's */
  types: NodeTypeDecl[];
  /** the declarations of the older versions the document's nodes are on */
  oldTypes: NodeTypeDecl[];
  campaign: Campaign | null;
  document: CampaignDocument;
}

const NEW_DOCUMENT: CampaignDocument = { name: "Untitled campaign", description: "", tags: [], nodes: [], edges: [] };

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
      const oldTypes = await loadVersions(missingVersions(document.nodes, typeMap(types, [])));
      if (live) setLoaded({ types, oldTypes, campaign, document });
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

/** The campaign as saved, and the calls that change it. */
export function useCampaignActions(initial: Campaign | null) {
  const [campaign, setCampaign] = useState<Campaign | null>(initial);
  const save = useCallback(async (document: CampaignDocument, launch: boolean): Promise<Campaign> => {
    const query = launch ? "?launch=true" : "";
    const saved = campaign === null
      ? await api.post<Campaign>(`/api/campaigns${query}`, document)
      : await api.put<Campaign>(`/api/campaigns/${campaign.id}${query}`, document);
    setCampaign(saved);
    if (campaign === null) navigate(`/campaigns/${saved.id}`, true);
    return saved;
  }, [campaign]);
  const act = useCallback(async (action: "pause" | "resume" | "stop" | "launch") => {
    if (!campaign) return;
    setCampaign(await api.post<Campaign>(`/api/campaigns/${campaign.id}/${action}`));
  }, [campaign]);
  return { campaign, setCampaign, save, act };
}
