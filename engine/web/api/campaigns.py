"""Campaigns over HTTP: documents in, versions out, and the lifecycle buttons.

"Save" stores a version and keeps the campaign as it is; "save and launch" (`?launch=true`
on create or update) stores and activates in one transaction, so a launch that fails
leaves no half-saved campaign behind. `?draft=true` keeps a draft that still has errors
(the canvas's autosave and "Save" of a half-built campaign), its problems stored with its
version and answered in `problems`; a body that is not even a campaign's structure is
refused whatever the flag (the `CampaignDocument` declaration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import UnaryExpression, func, select
from sqlalchemy.orm import Session

from engine.core import clock, db
from engine.core.counters import campaign_totals, node_stats
from engine.core.errors import DocumentInvalid, NotFound
from engine.core.models import Campaign, CampaignTag, CampaignVersion, Enrollment
from engine.core.validation import errors, validate_document
from engine.journeys import campaigns, summaries
from engine.web.access import read_only
from engine.web.api import body, iso, runtime
from engine.web.declare import accepts, args, query, responds
from engine.web.paging import page_args

bp = Blueprint("campaigns", __name__, url_prefix="/api/campaigns")

#: the lifecycle actions; each emits a `status` event to the campaign's Socket.IO room
ACTIONS = ("pause", "resume", "stop")
SORTS: dict[str, UnaryExpression[Any]] = {
    "updated": Campaign.updated_at.desc(), "created": Campaign.created_at.desc(), "name": Campaign.name.asc(),
}
#: app.extensions key: callables given the campaign's JSON after each status change
STATUS_LISTENERS = "campaign_canvas.status_listeners"


def not_a_document(found: list[dict[str, Any]], document: Any) -> DocumentInvalid:
    """A body that is not even a campaign's structure (draft or not) answers like any invalid
    document, 422 with every problem by node and field, so a client reads one shape of
    refusal: the validation's errors, and the structural limits it does not know (sizes)."""
    problems = [p.to_dict() for p in errors(validate_document(document))]
    seen = {p["pointer"] for p in problems}
    problems += [{"code": f["code"], "message": f"{f['pointer'].lstrip('/') or 'the document'} {f['message']}",
                  "pointer": f["pointer"], "node_id": None, "severity": "error"}
                 for f in found if f["pointer"] not in seen]
    noun = "problem" if len(problems) == 1 else "problems"
    return DocumentInvalid(f"campaign document is invalid: {len(problems)} {noun}", details=problems)


@bp.get("")
@query("CampaignList")
def list_campaigns() -> ResponseReturnValue:
    """Filters: `status` (one or several, comma-separated), `tag`, `q` (name contains,
    any case); `sort` updated|created|name; paging with `limit` and `offset`."""
    limit, offset = page_args(default=50, maximum=200)
    filters = args()
    query = select(Campaign)
    if wanted := filters.get("status"):
        query = query.where(Campaign.status.in_(wanted))
    if tag := filters.get("tag"):
        query = query.where(Campaign.id.in_(select(CampaignTag.campaign_id).where(CampaignTag.tag == tag)))
    if q := filters.get("q"):
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(func.lower(Campaign.name).like(pattern, escape="\\"))
    sort = filters["sort"]
    with runtime().sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = list(session.scalars(query.order_by(SORTS[sort], Campaign.id.desc()).limit(limit).offset(offset)))
        totals = campaign_totals(session, [c.id for c in rows])
        items = [{**campaign_json(c), **totals[c.id]} for c in rows]
    return jsonify(items=items, total=total, limit=limit, offset=offset)


@bp.post("")
@accepts("CampaignDocument", refuse=not_a_document)
@query("Save")
@responds(201)
def create_campaign() -> ResponseReturnValue:
    document = body()
    options = args()
    with db.transaction(runtime().sessions) as session:
        campaign = campaigns.create(session, document, draft=options["draft"])
        entered = campaigns.launch(session, campaign.id, clock.now()) if options["launch"] else None
        stored = session.get_one(CampaignVersion, campaign.version_id)  # with each node's version
        payload = _with_entered(campaign_json(campaign, stored, session), entered)
    _announce(payload) if options["launch"] else None
    return jsonify(payload)


@bp.get("/<int:campaign_id>")
def get_campaign(campaign_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        campaign = campaigns.get(session, campaign_id)
        version = session.get_one(CampaignVersion, campaign.version_id)
        return jsonify(campaign_json(campaign, version, session))


@bp.put("/<int:campaign_id>")
@accepts("CampaignDocument", refuse=not_a_document)
@query("Save")
def update_campaign(campaign_id: int) -> ResponseReturnValue:
    """A changed document becomes a new version; customers in flight stay on theirs. With
    `?draft=true` a draft campaign keeps a document with errors; any other status takes
    only a valid one."""
    document = body()
    options = args()
    with db.transaction(runtime().sessions) as session:
        version = campaigns.save(session, campaign_id, document, draft=options["draft"])
        campaign = campaigns.get(session, campaign_id)
        entered = None
        if options["launch"] and campaign.status in ("draft", "scheduled"):
            entered = campaigns.launch(session, campaign_id, clock.now())
        payload = _with_entered(campaign_json(campaign, version, session), entered)
    _announce(payload) if entered is not None else None
    return jsonify(payload)


@bp.delete("/<int:campaign_id>")
def delete_campaign(campaign_id: int) -> ResponseReturnValue:
    with db.transaction(runtime().sessions) as session:
        campaigns.delete(session, campaign_id)
    return jsonify(deleted=campaign_id)


@bp.post("/<int:campaign_id>/clone")
@accepts("Clone", required=False)
@responds(201)
def clone_campaign(campaign_id: int) -> ResponseReturnValue:
    """A new draft with the same document and tags; body `{"name": ...}` optional."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        copy = campaigns.clone(session, campaign_id, data.get("name"))
        payload = campaign_json(copy, session.get_one(CampaignVersion, copy.version_id), session)
    return jsonify(payload)


@bp.get("/<int:campaign_id>/versions")
def list_versions(campaign_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        campaign = campaigns.get(session, campaign_id)
        in_flight = dict(session.execute(
            select(Enrollment.version_id, func.count()).where(Enrollment.campaign_id == campaign_id,
                                                              Enrollment.state == "active")
            .group_by(Enrollment.version_id)).all())
        versions = session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id == campaign_id)
                                   .order_by(CampaignVersion.number.desc()))
        items = [{"id": v.id, "number": v.number, "created_at": iso(v.created_at), "name": v.document.get("name"),
                  "current": v.id == campaign.version_id, "in_flight": in_flight.get(v.id, 0)} for v in versions]
    return jsonify(items=items)


@bp.get("/<int:campaign_id>/versions/<int:number>")
def get_version(campaign_id: int, number: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        version = _version(session, campaign_id, number)
        return jsonify(id=version.id, number=version.number, created_at=iso(version.created_at),
                       document=version.document)


@bp.post("/<int:campaign_id>/versions/<int:number>/restore")
def restore_version(campaign_id: int, number: int) -> ResponseReturnValue:
    """Make an old version's document the newest version again (history is never rewritten)."""
    with db.transaction(runtime().sessions) as session:
        old = _version(session, campaign_id, number)
        version = campaigns.save(session, campaign_id, old.document, draft=True)  # a draft's own past
        payload = campaign_json(campaigns.get(session, campaign_id), version, session)
    return jsonify(payload)


@bp.post("/<int:campaign_id>/upgrade-nodes")
def upgrade_nodes(campaign_id: int) -> ResponseReturnValue:
    """Run the registered migrations on the nodes behind their type's newest version and save
    the result as a new version (customers in flight stay on theirs). `upgraded` says, per
    node, from and to which version, or why it stayed."""
    with db.transaction(runtime().sessions) as session:
        version, report = campaigns.upgrade_nodes(session, campaign_id, clock.now())
        payload = campaign_json(campaigns.get(session, campaign_id), version, session)
    return jsonify({**payload, "upgraded": [step.to_dict() for step in report]})


#: the answer of validating a document being edited: its problems, and the words on its node cards
CHECKED = {
    "type": "object",
    "required": ["problems", "summaries", "port_labels"],
    "properties": {
        "problems": {"type": "array", "items": {
            "type": "object", "required": ["code", "message", "pointer", "node_id", "severity"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "pointer": {"type": "string"},
                           "node_id": {"type": ["string", "null"]}, "severity": {"enum": ["error", "warning"]}}}},
        "summaries": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "node id: what the node does, in one line (nodes with valid settings)"},
        "port_labels": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {"type": "string"}},
            "description": "node id: {port: the name shown on it} where it is not the port id (A/B variants)"},
    },
}


@bp.post("/validate")
@read_only
@accepts("DocumentToCheck")
@responds(200, schema=CHECKED)
def validate_unsaved() -> ResponseReturnValue:
    """Every problem of a document not saved yet (errors and warnings), as saving would
    find them, and the summary of each node for its card; nothing is stored."""
    document = campaigns.with_node_versions(body())  # as saving would store it
    problems = validate_document(document)
    with runtime().sessions() as session:
        words = summaries.describe(session, document) if isinstance(document, Mapping) else {}
    return jsonify(problems=[p.to_dict() for p in problems], summaries=words.get("summaries", {}),
                   port_labels=words.get("port_labels", {}))


@bp.post("/<int:campaign_id>/validate")
@read_only
def validate_saved(campaign_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        campaign = campaigns.get(session, campaign_id)
        problems = validate_document(session.get_one(CampaignVersion, campaign.version_id).document)
    return jsonify(problems=[p.to_dict() for p in problems])


@bp.post("/<int:campaign_id>/launch")
def launch(campaign_id: int) -> ResponseReturnValue:
    with db.transaction(runtime().sessions) as session:
        entered = campaigns.launch(session, campaign_id, clock.now())
        payload = _with_entered(campaign_json(campaigns.get(session, campaign_id)), entered)
    _announce(payload)
    return jsonify(payload)


@bp.post("/<int:campaign_id>/<any(pause, resume, stop):action>")
def change_status(campaign_id: int, action: str) -> ResponseReturnValue:
    with db.transaction(runtime().sessions) as session:
        if action == "pause":
            campaigns.pause(session, campaign_id)
        elif action == "resume":
            campaigns.resume(session, campaign_id, clock.now())
        else:
            campaigns.stop(session, campaign_id, clock.now())
        payload = campaign_json(campaigns.get(session, campaign_id))
    _announce(payload)
    return jsonify(payload)


@bp.get("/<int:campaign_id>/stats")
def stats(campaign_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        campaigns.get(session, campaign_id)
        return jsonify(nodes=node_stats(session, campaign_id), **campaign_totals(session, [campaign_id])[campaign_id])


def campaign_json(campaign: Campaign, version: CampaignVersion | None = None,
                  session: Session | None = None) -> dict[str, Any]:
    """The campaign's row; with its `version`, the document and the problems kept with it
    (a draft saved half-built lists what is left to fix)."""
    data: dict[str, Any] = {
        "id": campaign.id, "name": campaign.name, "description": campaign.description, "tags": campaign.tags,
        "status": campaign.status, "status_reason": campaign.status_reason, "version_id": campaign.version_id,
        "created_at": iso(campaign.created_at), "updated_at": iso(campaign.updated_at),
        "launched_at": iso(campaign.launched_at), "finished_at": iso(campaign.finished_at),
        "next_run_at": iso(campaign.next_run_at),
    }
    if session is not None and campaign.version_id is not None:
        data["version"] = session.scalar(select(CampaignVersion.number).where(
            CampaignVersion.id == campaign.version_id))
    if version is not None:
        data["document"] = version.document
        data["problems"] = campaigns.stored_problems(version)
    return data


def _with_entered(payload: dict[str, Any], entered: int | None) -> dict[str, Any]:
    return payload if entered is None else {**payload, "entered": entered}


def _announce(payload: dict[str, Any]) -> None:
    for listener in current_app.extensions.get(STATUS_LISTENERS, []):
        listener(payload)


def _version(session: Session, campaign_id: int, number: int) -> CampaignVersion:
    campaigns.get(session, campaign_id)
    version = session.scalar(select(CampaignVersion).where(CampaignVersion.campaign_id == campaign_id,
                                                           CampaignVersion.number == number))
    if version is None:
        raise NotFound(f"campaign {campaign_id} has no version {number}")
    return version

