// Node type declarations shaped like GET /api/node-types answers, for the pure-module tests.

import type { NodeTypeDecl } from "../../types";
import { typeMap, type TypeMap } from "../graph";

function decl(fields: Partial<NodeTypeDecl> & Pick<NodeTypeDecl, "type" | "schema">): NodeTypeDecl {
  return {
    label: fields.type, category: "flow", description: "", ports: ["out"], dynamic_ports: false, entry: false,
    delay: false, version: 1, versions: [1], upgrade_to: null, template_channel: null, ...fields,
  };
}

export const TRIGGER = decl({
  type: "event_trigger", label: "Event", category: "trigger", entry: true,
  schema: { type: "object", properties: { event: { type: "string", minLength: 1 } }, required: ["event"] },
});
export const WAIT = decl({
  type: "wait", label: "Wait", delay: true,
  schema: { type: "object", properties: { amount: { type: "number", minimum: 0, default: 1 },
                                          unit: { type: "string", enum: ["hours", "days"], default: "days" } } },
});
export const FILTER = decl({ type: "filter", label: "Filter", ports: ["yes", "no"], schema: { type: "object" } });
export const AB = decl({
  type: "ab_test", label: "A/B test", dynamic_ports: true,
  schema: { type: "object", properties: { variants: { type: "array", items: { type: "object",
    properties: { id: { type: "string" } } }, default: [{ id: "a" }, { id: "b" }] } } },
});
export const CHECK = decl({
  type: "check_email_status", label: "Check email status", ports: ["opened", "not_opened"],
  schema: { type: "object", properties: { email_node: { type: "string", "x-node-ref": "send_email" } } },
});
export const FILTER_V2 = decl({ ...FILTER, version: 2, versions: [1, 2], ports: ["match", "else"] });
export const FILTER_V1 = decl({ ...FILTER, version: 1, versions: [1, 2], upgrade_to: 2 });

export const TYPES: TypeMap = typeMap([TRIGGER, WAIT, FILTER_V2, AB, CHECK], [FILTER_V1]);
