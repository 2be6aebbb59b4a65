// The shapes the REST API answers (see engine/web/api/ and schemas/campaign.schema.json).

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
  /** the version this declaration is (the list offers the newest of each type) */
  version: number;
  /** every installed version of the type, oldest first */
  versions: number[];
  /** the version the type's migrations upgrade a node of this version to, if any */
  upgrade_to: number | null;
  /** the template channel whose merge tags and preview a messaging node offers */
  template_channel: string | null;
}

/** `POST /api/node-types/<type>/upgrade`: a node's settings on the newest version. */
export interface NodeUpgrade {
  type: string;
  from_version: number;
  version: number;
  settings: Record<string, unknown>;
  ports: string[];
  /** old port -> the port that took its place */
  port_renames: Record<string, string>;
}

export interface Position {
  x: number;
  y: number;
}

export interface DocNode {
  id: string;
  type: string;
  /** the version of the type the node was built with (saving writes the newest when absent) */
  version?: number;
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
  settings?: CampaignSettings;
}

/** The document's `settings`: campaign-wide settings and controls (engine/core/controls.py). */
export interface CampaignSettings {
  timezone?: string;
  /** at most this many messages a minute; the rest wait their turn */
  send_rate_per_minute?: number;
  /** no message to a customer who already got this many (non-transactional) in their day or week */
  frequency_cap?: { messages: number; per: "day" | "week" };
  /** never capped, and not counted by other campaigns' caps */
  transactional?: boolean;
  /** when a journey ends early; `segment_id` is required with "segment", a goal with "goal" */
  exit?: { when: ExitWhen; segment_id?: number };
  [key: string]: unknown;
}

export type ExitWhen = "never" | "goal" | "segment";

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
  /** the problems kept with the current version (a draft saved half-built lists what is left to fix) */
  problems?: Problem[];
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/** One validation problem, with the node it concerns when there is one. */
/** What the server says about a document being edited: its problems, and the words on its node cards. */
export interface Checked {
  problems: Problem[];
  /** node id: what the node does, in one line (nodes whose settings are valid) */
  summaries: Record<string, string>;
  /** node id: {port id: the name shown on it} where that is not the id (an A/B test's variant names) */
  port_labels: Record<string, Record<string, string>>;
}

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
