// The report of one campaign (/campaigns/<id>/report): headline figures, every node's
// counts, delivery funnels, conversions over time, A/B variants, control group uplift and
// the action tracking table, kept current by the campaign's live room. Loaded on demand
// (App.tsx, React.lazy): the chart library is in this chunk, not in the editor's.

import "./report.css";
import { Link } from "../router";
import { AbChart } from "./AbChart";
import { ActionsTable } from "./ActionsTable";
import { FunnelChart } from "./FunnelChart";
import { NodeTable } from "./NodeTable";
import { SeriesChart } from "./SeriesChart";
import { Summary } from "./Summary";
import { UpliftBlock } from "./UpliftBlock";
import { useReport } from "./useReport";

export default function ReportPage({ campaignId }: { campaignId: number }) {
  const state = useReport(campaignId);
  const { report } = state;
  if (!report) {
    return (
      <main className="page report-page" data-testid="report-page">
        {state.error ? (
          <div className="banner error report-banner" role="alert" data-testid="report-error">
            Could not load the report: {state.error}{" "}
            <button type="button" className="link" onClick={state.reload}>Retry</button>{" "}
            <Link to="/">All campaigns</Link>
          </div>
        ) : (
          <div className="loading" data-testid="report-loading">Loading report…</div>
        )}
      </main>
    );
  }
  return (
    <main className="page report-page" data-testid="report-page" aria-busy={state.loading}>
      <Summary report={report} />
      {state.error && (
        <div className="banner error report-banner" role="alert" data-testid="report-error">
          Could not refresh the report: {state.error}{" "}
          <button type="button" className="link" onClick={state.reload}>Retry</button>
        </div>
      )}
      <SeriesChart series={report.series} interval={state.interval ?? report.series.interval} loading={state.loading}
                   onInterval={state.chooseInterval} />
      {report.messages.length > 0 && (
        <section className="report-section" aria-labelledby="report-messages-title">
          <h2 id="report-messages-title">Messages</h2>
          <div className="report-grid">
            {report.messages.map((m) => <FunnelChart key={m.node_id} message={m} />)}
          </div>
        </section>
      )}
      {report.ab_tests.length > 0 && (
        <section className="report-section" aria-labelledby="report-ab-title">
          <h2 id="report-ab-title">A/B tests</h2>
          <div className="report-grid">
            {report.ab_tests.map((t) => <AbChart key={t.node_id} test={t} />)}
          </div>
        </section>
      )}
      {report.control_groups.length > 0 && (
        <section className="report-section" aria-labelledby="report-uplift-title">
          <h2 id="report-uplift-title">Control groups</h2>
          <div className="report-grid">
            {report.control_groups.map((g) => <UpliftBlock key={g.node_id} group={g} />)}
          </div>
        </section>
      )}
      <NodeTable nodes={report.nodes} />
      <ActionsTable campaignId={campaignId} nodes={report.nodes} liveTick={state.liveTick} />
    </main>
  );
}
