// The buttons at the end of a row: Open always, Report once launched; Clone, the lifecycle
// moves and Delete for those who may change things, only where the campaign's status allows them.

import { Link, navigate } from "../router";
import type { Campaign } from "../types";
import { ACTION_LABEL, canDelete, lifecycleActions, type RowAction } from "./lifecycle";

export function RowActions(props: {
  campaign: Campaign;
  canEdit: boolean;
  busy: RowAction | undefined;
  onAction: (action: RowAction, campaign: Campaign) => void;
}) {
  const { campaign, canEdit, busy } = props;
  const actions: RowAction[] = canEdit
    ? ["clone", ...lifecycleActions(campaign.status), ...(canDelete(campaign.status) ? ["delete" as const] : [])]
    : [];
  return (
    <div className="row-actions" aria-busy={busy ? true : undefined}>
      <button type="button" onClick={() => navigate(`/campaigns/${campaign.id}`)}>Open</button>
      {campaign.status !== "draft" && (
        <Link to={`/campaigns/${campaign.id}/report`} className="button-link" testId="campaign-report-link"
              title="Figures, funnels, A/B results and every step customers took">Report</Link>
      )}
      {actions.map((action) => (
        <button
          key={action}
          type="button"
          className={`${action === "delete" || action === "stop" ? "danger" : ""}${busy === action ? " busy" : ""}`.trim() || undefined}
          disabled={busy !== undefined}
          onClick={() => props.onAction(action, campaign)}
        >
          {ACTION_LABEL[action]}
        </button>
      ))}
    </div>
  );
}
