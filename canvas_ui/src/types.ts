// The shapes the REST API answers (see engine/api/ and schemas/campaign.schema.json).

export type JSONSchema = Record<string, unknown>;

/** A node type as `GET /api/node-types` declares it. */
export interface NodeTypeDecl {
  type: string;
  label: string;
  category: string;
  description: string;
  schema: JSONSchema;
  ports: string[];
  dynamic_ports: boolean;
  entry: boolean;
  delay: boolean;
  version: number;
  /** the template channel whose merge tags and preview a messaging node offers */
  template_channel: string | null;
}

export interface Position {
  x: number;
  y: number;
}

export interface DocNode {
  id: string;
  type: string;
  label?: string;
  settings: Record<string, unknown>;
  position?: Position;
}

export interface DocEdge {
  id: string;
  source: string;
  source_port: string;
  target: string;
}

/** The campaign document: what is saved, versioned and validated. */
export interface CampaignDocument {
  name: string;
  description?: string;
  tags?: string[];
  nodes: DocNode[];
  edges: DocEdge[];
  goal?: { event: string; within?: string };
  stop_events?: string[];
  settings?: Record<string, unknown>;
}

export type CampaignStatus = "draft" | "scheduled" | "active" | "paused" | "stopped" | "finished" | "suspended";

export interface Campaign {
  id: number;
  name: string;
  description: string;
  tags: string[];
  status: CampaignStatus;
  status_reason: string | null;
  version_id: number | null;
  version?: number;
  created_at: string;
  updated_at: string;
  launched_at: string | null;
  finished_at: string | null;
  next_run_at: string | null;
  entered?: number;
  converted?: number;
  /** messages sent (the list and the `totals` live event carry it) */
  sent?: number;
  document?: CampaignDocument;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/** One validation problem, with the node it concerns when there is one. */
export interface Problem {
  code: string;
  message: string;
  pointer: string;
  node_id: string | null;
  severity: "error" | "warning";
}

export interface NodeStats {
  entered: number;
  waiting: number;
  left: Record<string, number>;
}

export interface CampaignStats {
  campaign_id?: number;
  nodes: Record<string, NodeStats>;
  entered: number;
  converted: number;
}

export interface Me {
  kind: "user" | "key";
  id: number;
  name: string;
  role: "admin" | "marketer" | "viewer";
  csrf_token?: string;
}
