"""Events over HTTP: what customers do comes in (one or a batch), the history goes out, and
event types list the campaigns each one starts, stops or converts.

Ingestion validates the whole request before writing anything, then stores it and applies
it to journeys in one transaction (see `engine.journeys.events`): a bad item refuses the batch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.core import clock, db
from engine.core.errors import InvalidInput, NameTaken, NotFound
from engine.core.models import Campaign, CampaignEvent, Event, EventType, Profile
from engine.journeys import events
from engine.web.api import body, iso, runtime
from engine.web.declare import accepts, args, query, responds
from engine.web.paging import instant_arg, limit_arg

bp = Blueprint("events", __name__, url_prefix="/api")

HISTORY_PAGE, HISTORY_MAX = 50, 500


@bp.post("/events")
@accepts("Event", refuse=events.refuse)
@responds(201)
def post_event() -> ResponseReturnValue:
    """One event; answers its id and what it did."""
    event = events.parse_event(body())
    with db.transaction(runtime().sessions) as session:
        outcome = events.ingest(session, [event], return_ids=True)
    return jsonify(id=outcome.event_ids[0], **outcome.counts())


@bp.post("/events/batch")
@accepts("EventBatch", refuse=events.refuse)
def post_batch() -> ResponseReturnValue:
    """Up to 10,000 events, all or nothing."""
    batch = events.parse_batch(body())
    with db.transaction(runtime().sessions) as session:
        outcome = events.ingest(session, batch)
    return jsonify(outcome.counts())


@bp.get("/events")
@query("EventHistory")
def list_events() -> ResponseReturnValue:
    """Newest first. Filters: `event`, `profile_id`, `external_id`, `since`, `until` (ISO
    8601). Page on with `before` = the `next_before` of the previous page (keyset paging:
    events arriving meanwhile neither repeat nor hide one)."""
    limit = limit_arg(HISTORY_PAGE, HISTORY_MAX)
    query = _history_filters(select(Event, Profile.external_id).join(Profile, Profile.id == Event.profile_id))
    before = args().get("before")
    with runtime().sessions() as session:
        if before is not None:
            query = query.where(_older_than(_anchor(session, before)))
        rows = session.execute(query.order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return jsonify(items=[_event_json(e, external_id) for e, external_id in page],
                   next_before=page[-1][0].id if len(rows) > limit else None)


def _history_filters(query: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    if name := args().get("event"):
        query = query.where(Event.name == name)
    if (profile_id := args().get("profile_id")) is not None:
        query = query.where(Event.profile_id == profile_id)
    if external_id := args().get("external_id"):
        query = query.where(Profile.external_id == external_id.strip())
    if (since := instant_arg("since")) is not None:
        query = query.where(Event.occurred_at >= since)
    if (until := instant_arg("until")) is not None:
        query = query.where(Event.occurred_at < until)
    return query


def _anchor(session: Session, event_id: int) -> Event:
    anchor = session.get(Event, event_id)
    if anchor is None:
        raise InvalidInput.field("before", f"must be the next_before of a previous page (no event {event_id})")
    return anchor


def _older_than(anchor: Event) -> Any:
    """Rows after `anchor` in (occurred_at desc, id desc) order."""
    return or_(Event.occurred_at < anchor.occurred_at,
               (Event.occurred_at == anchor.occurred_at) & (Event.id < anchor.id))


def _event_json(event: Event, external_id: str | None) -> dict[str, Any]:
    return {"id": event.id, "event": event.name, "profile_id": event.profile_id, "external_id": external_id,
            "properties": event.properties, "timestamp": iso(event.occurred_at)}


# --------------------------------------------------------------------------- event types


@bp.get("/event-types")
def list_event_types() -> ResponseReturnValue:
    with runtime().sessions() as session:
        types = list(session.scalars(select(EventType).order_by(EventType.name)))
        links = _campaign_links(session, [t.name for t in types])
    return jsonify(items=[_type_json(t, links.get(t.name, [])) for t in types])


@bp.get("/event-types/<path:name>")
def get_event_type(name: str) -> ResponseReturnValue:
    with runtime().sessions() as session:
        found = _event_type(session, name)
        return jsonify(_type_json(found, _campaign_links(session, [name]).get(name, [])))


@bp.post("/event-types")
@accepts("EventType")
@responds(201)
def create_event_type() -> ResponseReturnValue:
    """Declare an event type before any event of it arrives (to describe it, or to pick it
    on the canvas)."""
    data = body()
    name, description = data["name"], data.get("description", "")
    try:
        with db.transaction(runtime().sessions) as session:
            if session.scalar(select(EventType.id).where(EventType.name == name)) is not None:
                raise _taken(name)
            created = EventType(name=name, description=description, created_at=clock.now())
            session.add(created)
            session.flush()
            payload = _type_json(created, _campaign_links(session, [name]).get(name, []))
    except IntegrityError:  # created by a concurrent request (or an event) meanwhile
        raise _taken(name) from None
    return jsonify(payload)


@bp.patch("/event-types/<path:name>")
@accepts("EventTypeChange")
def update_event_type(name: str) -> ResponseReturnValue:
    description = body()["description"]
    with db.transaction(runtime().sessions) as session:
        found = _event_type(session, name)
        found.description = description
        payload = _type_json(found, _campaign_links(session, [name]).get(name, []))
    return jsonify(payload)


def _taken(name: str) -> NameTaken:
    return NameTaken(f"an event type named {name!r} already exists",
                     [{"pointer": "/name", "code": "name_taken", "message": "is taken"}])


def _event_type(session: Session, name: str) -> EventType:
    found = session.scalar(select(EventType).where(EventType.name == name)) if "\x00" not in name else None
    if found is None:
        raise NotFound(f"no event type named {name!r}")
    return found


def _campaign_links(session: Session, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per event name, the campaigns whose current version it starts, stops or converts."""
    links: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not names:
        return links
    rows = session.execute(
        select(CampaignEvent.event, CampaignEvent.role, Campaign.id, Campaign.name, Campaign.status)
        .join(Campaign, Campaign.id == CampaignEvent.campaign_id)
        # a long list (every type): reading all the links is cheaper than a huge IN
        .where(CampaignEvent.event.in_(names) if len(names) <= 500 else true())
        .order_by(Campaign.id, CampaignEvent.role)
    )
    for name, role, campaign_id, campaign_name, status in rows:
        links[name].append({"id": campaign_id, "name": campaign_name, "status": status, "role": role})
    return links


def _type_json(event_type: EventType, campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": event_type.name, "description": event_type.description,
            "created_at": iso(event_type.created_at), "last_seen_at": iso(event_type.last_seen_at),
            "campaigns": campaigns}
