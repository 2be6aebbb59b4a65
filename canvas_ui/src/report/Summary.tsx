// The top of the report: which campaign, how it stands, and its headline figures.

import { Link } from "../router";
import { count, dateTime, percent } from "./format";
import type { Report } from "./types";

function Card(props: { label: string; value: string; testId: string; hint?: string }) {
  return (
    <div className="report-card" title={props.hint}>
      <div className="report-card-label">{props.label}</div>
      <div className="report-card-value" data-testid={props.testId}>{props.value}</div>
    </div>
  );
}

export function Summary({ report }: { report: Report }) {
  const { campaign, totals, goal } = report;
  return (
    <>
      <header className="report-header">
        <div className="report-title">
          <nav className="report-crumbs" aria-label="Breadcrumbs">
            <Link to="/" testId="report-back">Campaigns</Link>
            <span aria-hidden="true"> / </span>
          </nav>
          <h1 data-testid="report-name" title={campaign.name}>{campaign.name}</h1>
          <span className={`status status-${campaign.status}`} data-testid="report-status">{campaign.status}</span>
          {campaign.version != null && <span className="muted">v{campaign.version}</span>}
        </div>
        <span className="spacer" />
        <Link to={`/campaigns/${campaign.id}`} className="button-link" testId="report-editor-link">Open in editor</Link>
      </header>
      <div className="report-meta muted">
        <span>Launched {dateTime(campaign.launched_at)}</span>
        {campaign.finished_at && <span>Finished {dateTime(campaign.finished_at)}</span>}
        <span data-testid="report-goal">
          Goal: {goal ? <strong>{goal.event}{goal.within ? ` within ${goal.within}` : ""}</strong> : "none"}
        </span>
        <span title={report.generated_at}>Figures as of {dateTime(report.generated_at)}</span>
      </div>
      <div className="report-cards" data-testid="report-cards">
        <Card label="Entered" value={count(totals.entered)} testId="total-entered" />
        <Card label="Converted" value={count(totals.converted)} testId="total-converted"
              hint={goal ? `Did ${goal.event}${goal.within ? ` within ${goal.within}` : ""}` : "The campaign has no goal"} />
        <Card label="Conversion rate" value={percent(totals.conversion_rate)} testId="total-rate" />
        <Card label="Waiting" value={count(totals.waiting)} testId="total-waiting" hint="In the campaign now, waiting at a node" />
        <Card label="Messages sent" value={count(totals.sent)} testId="total-sent" />
      </div>
    </>
  );
}
