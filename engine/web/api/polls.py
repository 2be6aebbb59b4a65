"""Polls over HTTP: create, list, change and delete polls; customers' responses (one per
customer and poll, checked against the poll); and the results, counted per answer.

A bad poll or response is refused whole with every problem named by its JSON pointer;
nothing is written. Validation lives in engine/engagement/polls.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core import clock, db
from engine.core.errors import InvalidInput
from engine.core.models import Poll, PollResponse, Profile
from engine.engagement import polls
from engine.journeys import profiles as store
from engine.web.api import body, iso, runtime
from engine.web.api.segments import refuse_if_used
from engine.web.declare import accepts, args, query, responds
from engine.web.named import Named
from engine.web.paging import page_args

bp = Blueprint("polls", __name__, url_prefix="/api/polls")
POLLS: Named[Poll] = Named(Poll, "poll")


@bp.get("")
@query("NameSearch")
def list_polls() -> ResponseReturnValue:
    """By name, each with its response count; `q` keeps the names containing it (any case)."""
    query = select(Poll).order_by(Poll.name, Poll.id)
    if q := args().get("q", "").strip():
        query = query.where(func.lower(Poll.name).contains(q.lower(), autoescape=True))
    with runtime().sessions() as session:
        rows = list(session.scalars(query))
        counts = dict(session.execute(select(PollResponse.poll_id, func.count()).group_by(PollResponse.poll_id)).all())
        return jsonify(items=[polls.poll_json(p, counts.get(p.id, 0)) for p in rows])


@bp.post("")
@accepts("Poll")
@responds(201)
def create_poll() -> ResponseReturnValue:
    """`{"name", "description", "questions": [{"id", "text", "answers": [{"id", "text"}],
    "multiple"}]}`: ids unique, at least one answer per question."""
    fields = polls.fields(body(), {"description": ""})
    with db.transaction(runtime().sessions) as session:
        POLLS.check_free(session, fields["name"])
        poll = Poll(**fields)
        session.add(poll)
        POLLS.flush(session, fields["name"])
        payload = polls.poll_json(poll, 0)
    return jsonify(payload)


@bp.get("/<int:poll_id>")
def get_poll(poll_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        return jsonify(polls.poll_json(POLLS.get(session, poll_id), polls.count_responses(session, poll_id)))


@bp.patch("/<int:poll_id>")
@accepts("PollChange")
def update_poll(poll_id: int) -> ResponseReturnValue:
    """Fields left out keep their values; `questions` replaces them all. Once customers
    answered, questions and answers may be added and reworded, not removed (409)."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        poll = POLLS.get(session, poll_id)
        fields = polls.fields(data, {"name": poll.name, "description": poll.description,
                                           "questions": poll.questions})
        polls.check_edit_keeps_responses(session, poll, fields["questions"])
        POLLS.check_free(session, fields["name"], poll_id)
        for key, value in fields.items():
            setattr(poll, key, value)
        POLLS.flush(session, fields["name"])
        payload = polls.poll_json(poll, polls.count_responses(session, poll_id))
    return jsonify(payload)


@bp.delete("/<int:poll_id>")
def delete_poll(poll_id: int) -> ResponseReturnValue:
    """Deletes the poll and its responses; refused while a live campaign uses it."""
    with db.transaction(runtime().sessions) as session:
        poll = POLLS.get(session, poll_id)
        refuse_if_used(session, "poll", poll_id, poll.name)
        session.delete(poll)
    return jsonify(deleted=poll_id)


@bp.post("/<int:poll_id>/responses")
@accepts("PollResponse")
@responds(201)
def post_response(poll_id: int) -> ResponseReturnValue:
    """`{"profile_id": n}` or `{"profile": {"external_id" | "email" | "phone": ...}}` (an
    unknown customer is created, as events do), and `"answers": {question id: [answer
    ids]}`. Records `poll.completed`. 409 `already_responded` for a second response."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        poll = POLLS.get(session, poll_id)
        answers = polls.check_answers(poll, data.get("answers"))
        profile_id = _customer(session, data)
        response_id = polls.respond(session, poll, profile_id, answers, clock.now())
        row = session.get_one(PollResponse, response_id)
        payload = _response_json(row, session.get_one(Profile, profile_id).external_id)
    return jsonify(payload)


@bp.get("/<int:poll_id>/responses")
@query("Page")
def list_responses(poll_id: int) -> ResponseReturnValue:
    """Oldest first (`limit`, `offset`), each with the customer's external_id."""
    limit, offset = page_args()
    with runtime().sessions() as session:
        POLLS.get(session, poll_id)
        rows = session.execute(
            select(PollResponse, Profile.external_id).join(Profile, Profile.id == PollResponse.profile_id)
            .where(PollResponse.poll_id == poll_id)
            .order_by(PollResponse.completed_at, PollResponse.id).limit(limit).offset(offset))
        items = [_response_json(r, external_id) for r, external_id in rows]
        return jsonify(items=items, total=polls.count_responses(session, poll_id), limit=limit, offset=offset)


@bp.get("/<int:poll_id>/results")
def poll_results(poll_id: int) -> ResponseReturnValue:
    """How many responses picked each answer of each question."""
    with runtime().sessions() as session:
        return jsonify(polls.results(session, POLLS.get(session, poll_id)))


# --------------------------------------------------------------------------- helpers


def _customer(session: Session, data: dict[str, Any]) -> int:
    """The profile a response names: by id (which must exist), or by identity."""
    if ("profile_id" in data) == ("profile" in data):
        raise InvalidInput.field("/profile", "or profile_id must name the customer (one of them)")
    if "profile" in data:
        ids, _created = store.resolve(session, [store.identity_of(data["profile"], "/profile")])
        return ids[0]
    profile_id = data["profile_id"]
    if not store.existing_ids(session, [profile_id]):
        raise InvalidInput.field("/profile_id", f"no profile has id {profile_id}")
    return profile_id


def _response_json(row: PollResponse, external_id: str | None) -> dict[str, Any]:
    return {"id": row.id, "poll_id": row.poll_id, "profile_id": row.profile_id, "external_id": external_id,
            "answers": row.answers, "completed_at": iso(row.completed_at)}
