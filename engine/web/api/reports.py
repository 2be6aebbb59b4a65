"""Reports over HTTP: a campaign's figures, its action tracking table, and that table as CSV.

`GET /api/campaigns/<id>/report` answers everything the report page draws (see
`engine.journeys.report`); `/actions` pages through the table newest first (keyset: `before` is the
last row id of the page before); `/report.csv` streams the whole filtered table, so an export
of millions of rows starts at once and never sits in memory.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from engine.core import clock
from engine.journeys import actions, report
from engine.web.api import runtime
from engine.web.declare import args, query, responds
from engine.web.paging import instant_arg, limit_arg

bp = Blueprint("reports", __name__, url_prefix="/api/campaigns")


@bp.get("/<int:campaign_id>/report")
@query("ReportOptions")
def get_report(campaign_id: int) -> ResponseReturnValue:
    """`interval` hour|day (default: hourly for up to 72 hours of data), `tz` an IANA time
    zone for day boundaries (default: the account's)."""
    rt = runtime()
    tz = report.time_zone(args().get("tz") or rt.settings.account_timezone)
    with rt.sessions() as session:
        return jsonify(report.build(session, campaign_id, clock.now(), interval=args().get("interval"), tz=tz))


@bp.get("/<int:campaign_id>/actions")
@query("ActionFilters")
def list_actions(campaign_id: int) -> ResponseReturnValue:
    """Filters: `node`, `port`, `status` (message status, or `none`), `profile` (id, email,
    phone or external id), `since`, `until`; `limit` (50, at most 500), `before`."""
    filters = _filters()
    limit, before = limit_arg(50, 500), args().get("before")
    with runtime().sessions() as session:
        labels = report.labels(session, campaign_id)
        return jsonify(actions.page(session, campaign_id, filters, labels, limit=limit, before=before))


@bp.get("/<int:campaign_id>/report.csv")
@query("ActionExport")
@responds(200, media_type="text/csv")
def export_actions(campaign_id: int) -> ResponseReturnValue:
    """The action tracking table as CSV: the same filters, and `columns` (comma-separated,
    any of `engine.journeys.actions.COLUMNS`, in the order wanted); without them, every
    column in the marketer's words (the node's id and type key only when asked for)."""
    filters, columns = _filters(), list(dict.fromkeys(args().get("columns") or actions.EXPORT_COLUMNS))
    rt = runtime()
    with rt.sessions() as session:
        labels = report.labels(session, campaign_id)  # a missing campaign is a 404 before streaming
    rows = actions.export_csv(rt.sessions, campaign_id, filters, labels, columns)
    filename = f"campaign-{campaign_id}-actions.csv"
    return Response(rows, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Accel-Buffering": "no",  # a proxy passes the stream on instead of collecting it
        "Cache-Control": "no-store",
    })


def _filters() -> actions.Filters:
    given = args()
    return actions.Filters(node=given.get("node") or None, port=given.get("port") or None,
                           status=given.get("status") or None, profile=given.get("profile") or None,
                           since=instant_arg("since"), until=instant_arg("until"))

