// The shapes of the report API: `GET /api/campaigns/<id>/report` and `.../actions`.
// Every rate is a fraction 0..1, or null when it has no denominator.

import type { CampaignStatus } from "../types";

export type Rate = number | null;
export type Interval = "hour" | "day";

export interface ReportNode {
  id: string;
  type: string;
  /** the node's own label, else its type's palette name */
  label: string | null;
  /** the type's name in the palette ("Send email"): never show `type`, a key */
  type_label: string;
  entered: number;
  waiting: number;
  left: Record<string, number>;
  /** no longer in the current version of the campaign */
  removed: boolean;
}

export interface Funnel {
  queued: number;
  sent: number;
  delivered: number;
  opened: number;
  clicked: number;
  bounced: number;
  failed: number;
  uncertain: number;
  unsubscribed: number;
}

export interface FunnelRates {
  sent: Rate;
  delivered: Rate;
  opened: Rate;
  clicked: Rate;
  click_to_open: Rate;
  bounced: Rate;
  failed: Rate;
  unsubscribed: Rate;
}

export interface MessageReport {
  node_id: string;
  label: string | null;
  type: string;
  type_label: string;
  channel: string;
  funnel: Funnel;
  rates: FunnelRates;
}

export interface AbVariant {
  id: string;
  name: string | null;
  test_size: number;
  test_hits: number;
  test_rate: Rate;
  entered: number;
  converted: number;
  conversion_rate: Rate;
  winner: boolean;
}

export interface AbTestReport {
  node_id: string;
  label: string | null;
  type_label: string;
  metric: "opens" | "clicks" | "conversions";
  state: "testing" | "evaluating" | "decided";
  decided_at: string | null;
  winner: string | null;
  variants: AbVariant[];
}

export interface GroupSide {
  customers: number;
  converted: number;
  rate: Rate;
}

export interface Uplift {
  absolute: number;
  relative: number | null;
  ci_low: number;
  ci_high: number;
  confidence: number;
  significant: boolean;
}

export interface ControlGroupReport {
  node_id: string;
  label: string | null;
  type_label: string;
  control: GroupSide;
  treated: GroupSide;
  /** null while one side has no customers */
  uplift: Uplift | null;
}

export interface SeriesPoint {
  start: string;
  entered: number;
  converted: number;
}

export interface Report {
  campaign: {
    id: number;
    name: string;
    status: CampaignStatus;
    version: number | null;
    launched_at: string | null;
    finished_at: string | null;
  };
  generated_at: string;
  goal: { event: string; within?: string | null } | null;
  totals: { entered: number; converted: number; conversion_rate: Rate; waiting: number; sent: number };
  nodes: ReportNode[];
  messages: MessageReport[];
  ab_tests: AbTestReport[];
  control_groups: ControlGroupReport[];
  series: { interval: Interval; timezone: string; points: SeriesPoint[] };
}

/** One step a customer took: through a node, out by a port (and a message's status). */
export interface Action {
  id: number;
  at: string;
  profile_id: number;
  external_id: string | null;
  email: string | null;
  phone: string | null;
  node_id: string;
  node_label: string | null;
  node_type: string | null;
  node_type_label: string | null;
  port: string;
  message_status: string | null;
}

export interface ActionsPage {
  items: Action[];
  total: number;
  limit: number;
  next_before: number | null;
}
