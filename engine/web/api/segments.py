"""Segments over HTTP: saved rule sets (the filter node's rule language, engine/core/rules.py) to
list, create, edit, delete and preview.

Rules are checked in full before anything is stored (every problem, with its pointer under
`/rules`), then compiled against the database: the segments and audiences they name must
exist and no segment may include itself, so a stored segment always compiles. A segment
that a live campaign (or another segment) uses cannot be deleted."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core import clock, db
from engine.core.errors import InvalidInput, InvalidState, RuleError
from engine.core.models import Campaign, CampaignVersion, Profile, Segment
from engine.core.rules import compile_rules
from engine.journeys import segments
from engine.web.access import read_only
from engine.web.api import body, iso, runtime
from engine.web.api.profiles import profile_json
from engine.web.declare import accepts, args, query, responds
from engine.web.named import Named

bp = Blueprint("segments", __name__, url_prefix="/api/segments")
SEGMENTS: Named[Segment] = Named(Segment, "segment", "a")

#: fields a client may write (the schema accepts and ignores those GET adds)
FIELDS = ("name", "description", "rules")
PREVIEW_SIZE = 20
#: campaigns in these states run nothing any more, so they use no segment or audience
FINISHED = ("stopped", "finished")


@bp.get("")
@query("NameSearch")
def list_segments() -> ResponseReturnValue:
    """By name; `q` keeps the names containing it (any case)."""
    query = select(Segment).order_by(Segment.name, Segment.id)
    if q := args().get("q", "").strip():
        query = query.where(func.lower(Segment.name).contains(q.lower(), autoescape=True))
    with runtime().sessions() as session:
        return jsonify(items=[segment_json(s) for s in session.scalars(query)])


@bp.post("")
@accepts("Segment")
@responds(201)
def create_segment() -> ResponseReturnValue:
    fields = _fields(body(), {"description": ""})
    with db.transaction(runtime().sessions) as session:
        SEGMENTS.check_free(session, fields["name"], None)
        _compile(session, fields["rules"])
        segment = Segment(**fields)
        session.add(segment)
        SEGMENTS.flush(session, fields["name"])
        payload = segment_json(segment)
    return jsonify(payload)


@bp.get("/<int:segment_id>")
def get_segment(segment_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        return jsonify(segment_json(SEGMENTS.get(session, segment_id)))


@bp.put("/<int:segment_id>")
@accepts("SegmentChange")
def update_segment(segment_id: int) -> ResponseReturnValue:
    """Fields left out keep their stored values; what is given is validated as a whole."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        segment = SEGMENTS.get(session, segment_id)
        fields = _fields(data, {"name": segment.name, "description": segment.description, "rules": segment.rules})
        SEGMENTS.check_free(session, fields["name"], segment_id)
        for key, value in fields.items():
            setattr(segment, key, value)
        _compile(session, fields["rules"])  # sees the new rules: a loop through this segment is refused
        SEGMENTS.flush(session, fields["name"])
        if segments.watchers(session, clock.now(), segment_id):  # campaigns waiting for its newcomers
            segments.refresh(session, segment_id, clock.now())
        payload = segment_json(segment)
    return jsonify(payload)


@bp.delete("/<int:segment_id>")
def delete_segment(segment_id: int) -> ResponseReturnValue:
    with db.transaction(runtime().sessions) as session:
        segment = SEGMENTS.get(session, segment_id)
        refuse_if_used(session, "segment", segment_id, segment.name)
        session.delete(segment)
    return jsonify(deleted=segment_id)


@bp.get("/<int:segment_id>/preview")
def preview_segment(segment_id: int) -> ResponseReturnValue:
    """How many customers match now, and the first PREVIEW_SIZE of them (by id)."""
    with runtime().sessions() as session:
        return jsonify(_preview(session, SEGMENTS.get(session, segment_id).rules))


@bp.post("/preview")
@read_only
@accepts("RulesPreview")
def preview_rules() -> ResponseReturnValue:
    """The same for rules not saved yet: `{"rules": {...}}`."""
    data = body()
    with runtime().sessions() as session:
        _compile(session, data["rules"])
        return jsonify(_preview(session, data["rules"]))


# --------------------------------------------------------------------------- in use


def refuse_if_used(session: Session, kind: str, ref_id: int, name: str) -> None:
    """InvalidState naming the live campaigns (any version of a campaign not stopped or
    finished: journeys in flight may be on an older one) and the segments that use the
    segment or audience `ref_id`."""
    users = users_of(session, kind, ref_id)
    if not users:
        return
    named = ", ".join(f"{'campaign' if 'campaign_id' in u else 'segment'} {u['name']!r} "
                      f"(id {u.get('campaign_id', u.get('segment_id'))})" for u in users)
    raise InvalidState(f"{kind} {ref_id} ({name!r}) is used by {named}: change, stop or delete them first",
                       [{**u, "message": f"uses {kind} {ref_id}"} for u in users])


def users_of(session: Session, kind: str, ref_id: int) -> list[dict[str, Any]]:
    """What uses segment/audience `ref_id`: node settings naming it as `<kind>_id`, and rules
    naming it as `{"<kind>": id}`."""
    users: list[dict[str, Any]] = []
    live = (select(Campaign.id, Campaign.name, CampaignVersion.document)
            .join(CampaignVersion, CampaignVersion.campaign_id == Campaign.id)
            .where(Campaign.status.not_in(FINISHED)).order_by(Campaign.id, CampaignVersion.id))
    for campaign_id, name, document in session.execute(live):
        if users and users[-1]["campaign_id"] == campaign_id:
            continue
        nodes = document.get("nodes", []) if isinstance(document, dict) else []
        if any(isinstance(n, dict) and _names(n.get("settings"), kind, ref_id) for n in nodes):
            users.append({"campaign_id": campaign_id, "name": name})
    others = select(Segment.id, Segment.name, Segment.rules).order_by(Segment.id)
    users.extend({"segment_id": segment_id, "name": name} for segment_id, name, rules in session.execute(others)
                 if not (kind == "segment" and segment_id == ref_id) and _names(rules, kind, ref_id))
    return users


def _names(value: Any, kind: str, ref_id: int) -> bool:
    if isinstance(value, list):
        return any(_names(v, kind, ref_id) for v in value)
    if not isinstance(value, dict):
        return False
    if _is_id(value.get(f"{kind}_id"), ref_id) and value.get("source", kind) == kind:
        return True  # a node's setting (select_segment only uses the one its `source` picks)
    if _is_id(value.get(kind), ref_id):
        return True  # a membership rule
    return any(_names(v, kind, ref_id) for v in value.values())


def _is_id(value: Any, ref_id: int) -> bool:
    return type(value) is int and value == ref_id


# --------------------------------------------------------------------------- helpers


def _fields(data: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`current` (stored values) overlaid with the body (checked by its schema), trimmed."""
    fields = {**current, **{k: v for k, v in data.items() if k in FIELDS}}
    return {**fields, "name": fields["name"].strip(), "description": fields.get("description") or ""}


def _compile(session: Session, rules: Any) -> Any:
    """The rules as SQL; a segment or audience they name that is missing, or a segment that
    includes itself, is refused at its pointer under /rules."""
    try:
        return compile_rules(rules, session, clock.now())
    except RuleError as exc:
        details = [{**d, "pointer": "/rules" + d.get("pointer", "")} for d in exc.details]
        raise InvalidInput.of(details) from None


def _preview(session: Session, rules: dict[str, Any]) -> dict[str, Any]:
    condition = compile_rules(rules, session, clock.now())
    count = session.scalar(select(func.count()).select_from(Profile).where(condition)) or 0
    first = session.scalars(select(Profile).where(condition).order_by(Profile.id).limit(PREVIEW_SIZE))
    return {"count": count, "items": [profile_json(p) for p in first]}










def segment_json(segment: Segment) -> dict[str, Any]:
    return {"id": segment.id, "name": segment.name, "description": segment.description, "rules": segment.rules,
            "evaluated_at": iso(segment.evaluated_at), "created_at": iso(segment.created_at),
            "updated_at": iso(segment.updated_at)}
