// The campaigns list: find a campaign (search, statuses, tag, sort, pages, all in the URL),
// see how it does (live counts), and start, pause, resume, stop, clone or delete it.

import "./campaigns.css";
import { memo } from "react";
import { Confirm } from "../Modal";
import { Link, navigate } from "../router";
import type { Me } from "../types";
import { Banner } from "./Banner";
import { CampaignTable } from "./CampaignTable";
import { EmptyState } from "./EmptyState";
import { Filters } from "./Filters";
import { ACTION_LABEL, confirmation } from "./lifecycle";
import { Pager } from "./Pager";
import { hasFilters } from "./query";
import { useCampaignList, type CampaignList } from "./useCampaignList";
import { useRowActions, type RowActions } from "./useRowActions";

const newCampaign = () => navigate("/campaigns/new");

export function CampaignsPage({ me }: { me: Me }) {
  const list = useCampaignList();
  const actions = useRowActions(list);
  const canEdit = me.role !== "viewer";
  return (
    <main className="page campaigns-page">
      <header className="campaigns-header">
        <h1>Campaigns</h1>
        <span className="spacer" />
        {canEdit && <button type="button" className="primary" onClick={newCampaign}>New campaign</button>}
      </header>
      <Messages list={list} actions={actions} />
      <Filters filters={list.filters} onChange={list.update} />
      <Results list={list} actions={actions} canEdit={canEdit} />
      {actions.pending && <ConfirmAction pending={actions.pending} onConfirm={actions.confirm} onCancel={actions.cancel} />}
    </main>
  );
}

function Messages({ list, actions }: { list: CampaignList; actions: RowActions }) {
  return (
    <>
      {list.error && (
        <Banner kind="error" onDismiss={list.dismissError} testId="campaigns-error">
          Could not load campaigns: {list.error}{" "}
          <button type="button" className="link" onClick={list.reload}>Retry</button>
        </Banner>
      )}
      {actions.error && (
        <Banner kind="error" onDismiss={actions.dismissError} testId="campaigns-error">{actions.error}</Banner>
      )}
      {actions.notice && (
        <Banner kind="info" onDismiss={actions.dismissNotice} testId="campaigns-notice">
          {actions.notice.text}{" "}
          {actions.notice.openId !== undefined && <Link to={`/campaigns/${actions.notice.openId}`}>Open it</Link>}
        </Banner>
      )}
    </>
  );
}

function Results({ list, actions, canEdit }: { list: CampaignList; actions: RowActions; canEdit: boolean }) {
  if (list.initial) {
    return list.loading ? <div className="loading" data-testid="campaigns-loading">Loading campaigns…</div> : null;
  }
  const setTag = (tag: string) => list.update({ tag });
  const empty = list.items.length === 0;
  return (
    <>
      {empty && list.loading && <div className="loading" data-testid="campaigns-loading">Loading campaigns…</div>}
      {empty && !list.loading && (
        <EmptyState filtered={hasFilters(list.filters)} canEdit={canEdit} onNew={newCampaign}
          onClear={() => list.update({ q: "", statuses: [], tag: "" })} />
      )}
      {!empty && (
        <div className="table-scroll">
          <CampaignTable items={list.items} loading={list.loading} canEdit={canEdit} busy={actions.busy}
            highlight={actions.highlight} activeTag={list.filters.tag} onTag={setTag} onAction={actions.request} />
        </div>
      )}
      <Pager page={list.filters.page} total={list.total} shown={list.items.length}
        onPage={(page) => list.update({ page })} />
    </>
  );
}

/** Memoized: the shared Confirm focuses its button again whenever it re-renders. */
const ConfirmAction = memo(function ConfirmAction(props: {
  pending: NonNullable<RowActions["pending"]>;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const { action, campaign } = props.pending;
  const question = confirmation(action, campaign.name)!;
  return (
    <Confirm
      title={question.title}
      message={question.message}
      confirmLabel={ACTION_LABEL[action]}
      danger={question.danger}
      onConfirm={props.onConfirm}
      onCancel={props.onCancel}
    />
  );
});
