"""Audiences over HTTP: static lists of customers (filled by campaigns, imports or by hand)
to list, create, rename, delete, and whose members are listed, added and removed in bulk.

Members are named by profile id or by identity (external_id, email or phone, matched as
events match them); a name that is nobody refuses the whole request, so a typo never
silently does nothing. Membership changes tell `profiles_changed`, since segment rules
may test audience membership."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine.core import clock, db
from engine.core.db import upsert
from engine.core.errors import InvalidInput
from engine.core.models import Audience, AudienceMember, Profile
from engine.journeys import profiles as store
from engine.journeys.segments import profiles_changed
from engine.web.api import body, iso, runtime
from engine.web.api.profiles import profile_json
from engine.web.api.segments import refuse_if_used
from engine.web.declare import accepts, args, query, responds
from engine.web.named import Named
from engine.web.paging import page_args

bp = Blueprint("audiences", __name__, url_prefix="/api/audiences")
AUDIENCES: Named[Audience] = Named(Audience, "audience", "an")

FIELDS = ("name", "description")
#: customers one request may add or remove
MEMBERS_MAX = 10_000


@bp.get("")
@query("NameSearch")
def list_audiences() -> ResponseReturnValue:
    """By name, each with its member count; `q` keeps the names containing it (any case)."""
    query = select(Audience).order_by(Audience.name, Audience.id)
    if q := args().get("q", "").strip():
        query = query.where(func.lower(Audience.name).contains(q.lower(), autoescape=True))
    with runtime().sessions() as session:
        audiences = list(session.scalars(query))
        per_audience = select(AudienceMember.audience_id, func.count()).group_by(AudienceMember.audience_id)
        counts = {audience_id: count for audience_id, count in session.execute(per_audience)}
        return jsonify(items=[audience_json(a, counts.get(a.id, 0)) for a in audiences])


@bp.post("")
@accepts("Audience")
@responds(201)
def create_audience() -> ResponseReturnValue:
    fields = _fields(body(), {"description": ""})
    with db.transaction(runtime().sessions) as session:
        AUDIENCES.check_free(session, fields["name"], None)
        audience = Audience(**fields)
        session.add(audience)
        AUDIENCES.flush(session, fields["name"])
        payload = audience_json(audience, 0)
    return jsonify(payload)


@bp.get("/<int:audience_id>")
def get_audience(audience_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        return jsonify(audience_json(AUDIENCES.get(session, audience_id), _count(session, audience_id)))


@bp.patch("/<int:audience_id>")
@accepts("AudienceChange")
def update_audience(audience_id: int) -> ResponseReturnValue:
    data = body()
    with db.transaction(runtime().sessions) as session:
        audience = AUDIENCES.get(session, audience_id)
        fields = _fields(data, {"name": audience.name, "description": audience.description})
        AUDIENCES.check_free(session, fields["name"], audience_id)
        for key, value in fields.items():
            setattr(audience, key, value)
        AUDIENCES.flush(session, fields["name"])
        payload = audience_json(audience, _count(session, audience_id))
    return jsonify(payload)


@bp.delete("/<int:audience_id>")
def delete_audience(audience_id: int) -> ResponseReturnValue:
    """Refused while a live campaign or a segment uses the audience."""
    with db.transaction(runtime().sessions) as session:
        audience = AUDIENCES.get(session, audience_id)
        refuse_if_used(session, "audience", audience_id, audience.name)
        session.delete(audience)
    return jsonify(deleted=audience_id)


@bp.get("/<int:audience_id>/members")
@query("Page")
def list_members(audience_id: int) -> ResponseReturnValue:
    """Oldest membership first: each profile with `added_at`; `total` counts them all."""
    limit, offset = page_args()
    with runtime().sessions() as session:
        AUDIENCES.get(session, audience_id)
        rows = session.execute(
            select(Profile, AudienceMember.added_at)
            .join(AudienceMember, AudienceMember.profile_id == Profile.id)
            .where(AudienceMember.audience_id == audience_id)
            .order_by(AudienceMember.added_at, AudienceMember.profile_id).limit(limit).offset(offset))
        items = [{**profile_json(p), "added_at": iso(added)} for p, added in rows]
        return jsonify(items=items, total=_count(session, audience_id), limit=limit, offset=offset)


@bp.post("/<int:audience_id>/members")
@accepts("Members")
def add_members(audience_id: int) -> ResponseReturnValue:
    """`{"profile_ids": [...], "profiles": [{"email": ...}, ...]}` (either or both). Adding
    a member again is harmless: `added` counts the new ones."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        AUDIENCES.get(session, audience_id)
        ids = _members(session, data)
        now = clock.now()
        before = _count(session, audience_id)
        rows = [{"audience_id": audience_id, "profile_id": i, "added_at": now} for i in ids]
        session.execute(upsert(session, AudienceMember).on_conflict_do_nothing(), rows)
        after = _count(session, audience_id)
        profiles_changed(session, ids, now)
    return jsonify(added=after - before, member_count=after)


@bp.delete("/<int:audience_id>/members")
@accepts("Members")
def remove_members(audience_id: int) -> ResponseReturnValue:
    """The same body as adding; removing a customer who is not a member is harmless."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        AUDIENCES.get(session, audience_id)
        ids = _members(session, data)
        before = _count(session, audience_id)
        for condition in store.where_in(session, AudienceMember.__table__.c.profile_id, ids):
            session.execute(delete(AudienceMember).where(AudienceMember.audience_id == audience_id, condition))
        after = _count(session, audience_id)
        profiles_changed(session, ids, clock.now())
    return jsonify(removed=before - after, member_count=after)


# --------------------------------------------------------------------------- helpers


def _members(session: Session, data: dict[str, Any]) -> list[int]:
    """The profile ids a members body (checked by its schema) names; InvalidInput listing
    every name that is nobody."""
    ids, identities = data.get("profile_ids", []), data.get("profiles", [])
    if not 1 <= len(ids) + len(identities) <= MEMBERS_MAX:
        raise InvalidInput.field("", f"must name 1 to {MEMBERS_MAX:,} customers in profile_ids and profiles")
    named = [(index, store.identity_of(raw, f"/profiles/{index}")) for index, raw in enumerate(identities)]
    return _resolve(session, ids, named)


def _resolve(session: Session, ids: list[int], named: list[tuple[int, dict[str, str]]]) -> list[int]:
    existing = store.existing_ids(session, ids)
    problems = [{"pointer": f"/profile_ids/{i}", "message": f"no profile has id {v}"}
                for i, v in enumerate(ids) if v not in existing]
    found = store.find(session, [identity for _, identity in named])
    for (index, identity), profile_id in zip(named, found, strict=True):
        if profile_id is None:
            who = " or ".join(f"{k} {v!r}" for k, v in identity.items())
            problems.append({"pointer": f"/profiles/{index}", "message": f"no profile has {who}"})
    if problems:
        raise InvalidInput.of(problems)
    return sorted(existing | {i for i in found if i is not None})


def _fields(data: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`current` (stored values) overlaid with the body (checked by its schema), trimmed."""
    fields = {**current, **{k: v for k, v in data.items() if k in FIELDS}}
    return {**fields, "name": fields["name"].strip(), "description": fields.get("description") or ""}


def _count(session: Session, audience_id: int) -> int:
    return session.scalar(select(func.count()).select_from(AudienceMember)
                          .where(AudienceMember.audience_id == audience_id)) or 0










def audience_json(audience: Audience, member_count: int) -> dict[str, Any]:
    return {"id": audience.id, "name": audience.name, "description": audience.description,
            "member_count": member_count, "created_at": iso(audience.created_at)}
