"""Polls: questions with answers to pick, customers' responses, and the figures.

A poll is validated whole before it is stored (every problem at once, each naming its
field), and once customers have answered, an edit may add questions and answers and change
texts but not remove an answer someone gave or make a multiple-answer question single:
stored responses must stay valid against their poll.

A response is one customer's completed poll: every question answered with known answer
ids, several only where the question allows it, at most one response per customer and poll
(the database's unique key decides between concurrent requests: 409, never two rows). It
records a `poll.completed` event through engine/journeys/events.py in the same transaction, so a
campaign can start, stop or convert on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from engine.core.clock import iso
from engine.core.db import upsert
from engine.core.engagement import PERIODS, count_responses, period_start  # noqa: F401  (kept importable here)
from engine.core.errors import CampaignCanvasError, InvalidInput, InvalidState
from engine.core.models import Poll, PollResponse
from engine.core.pointers import token
from engine.journeys import events

COMPLETED_EVENT = "poll.completed"
#: fields a client may write (schemas/api/polls.schema.json)
FIELDS = ("name", "description", "questions")

Problems = list[dict[str, Any]]


class AlreadyResponded(CampaignCanvasError):
    """The customer has completed this poll before: one response per customer and poll."""

    code = "already_responded"
    status = 409


def _problem(pointer: str, message: str) -> dict[str, Any]:
    return {"pointer": pointer, "code": "invalid_field", "message": message}


# --------------------------------------------------------------------------- the poll


def fields(data: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The poll's fields: `current` (stored or defaults) overlaid with a body its schema
    checked (schemas/api/polls.schema.json), texts trimmed and `multiple` filled in."""
    merged = {**current, **{k: v for k, v in data.items() if k in FIELDS}}
    questions = [{"id": q["id"], "text": q["text"].strip(), "multiple": q.get("multiple", False),
                  "answers": [{"id": a["id"], "text": a["text"].strip()} for a in q["answers"]]}
                 for q in merged["questions"]]
    return {"name": merged["name"].strip(), "description": (merged.get("description") or "").strip(),
            "questions": questions}


def check_edit_keeps_responses(session: Session, poll: Poll, questions: list[dict[str, Any]]) -> None:
    """Refuse (409) an edit that would make a stored response invalid: a question or an
    answer removed, or a multiple-answer question made single."""
    if not count_responses(session, poll.id):
        return
    new = {q["id"]: q for q in questions}
    problems = []
    for old in poll.questions:
        kept = new.get(old["id"])
        if kept is None:
            problems.append(_problem("/questions", f"must keep question {old['id']!r}: customers answered it"))
            continue
        missing = {a["id"] for a in old["answers"]} - {a["id"] for a in kept["answers"]}
        if missing:
            problems.append(_problem("/questions", f"must keep the answers {sorted(missing)} of question "
                                                   f"{old['id']!r}: customers may have picked them"))
        if old.get("multiple") and not kept["multiple"]:
            problems.append(_problem("/questions", f"question {old['id']!r} must stay multiple-answer: "
                                                   "responses pick several"))
    if problems:
        raise InvalidState(f"the poll has responses, so {problems[0]['message']}", problems)


def poll_json(poll: Poll, response_count: int) -> dict[str, Any]:
    return {"id": poll.id, "name": poll.name, "description": poll.description, "questions": poll.questions,
            "response_count": response_count, "created_at": iso(poll.created_at),
            "updated_at": iso(poll.updated_at)}


# --------------------------------------------------------------------------- responses


def check_answers(poll: Poll, raw: Any) -> dict[str, list[str]]:
    """`{question id: [answer id, ...]}` checked against the poll: every question answered,
    known ids only, one answer unless the question is multiple. InvalidInput lists every
    problem, each naming its field (`/answers/<question id>/<n>`)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput.field("/answers", "must be an object {question id: [answer ids]}")
    questions = {q["id"]: q for q in poll.questions}
    problems = [_problem(f"/answers/{token(key)}", f"is not a question of poll {poll.id}")
                for key in raw if key not in questions]
    answers = {}
    for qid, question in questions.items():
        answers[qid] = _picked(question, raw.get(qid), f"/answers/{token(qid)}", problems)
    if problems:
        raise InvalidInput.of(problems)
    return answers


def _picked(question: Mapping[str, Any], raw: Any, pointer: str, problems: Problems) -> list[str]:
    if raw is None:
        problems.append(_problem(pointer, "is not answered: every question needs an answer"))
        return []
    if not isinstance(raw, list) or not raw:
        problems.append(_problem(pointer, "must be a non-empty list of answer ids"))
        return []
    if len(raw) > 1 and not question.get("multiple"):
        problems.append(_problem(pointer, "takes one answer only (the question is not multiple-answer)"))
    known = {a["id"] for a in question["answers"]}
    for i, answer in enumerate(raw):
        if answer not in known:
            problems.append(_problem(f"{pointer}/{i}", f"is not an answer of question {question['id']!r}"))
        elif raw.index(answer) != i:
            problems.append(_problem(f"{pointer}/{i}", f"repeats the answer {answer!r}"))
    return list(raw)


def respond(session: Session, poll: Poll, profile_id: int, answers: dict[str, list[str]], now: datetime) -> int:
    """Store a completed response and record `poll.completed`; the response's id.
    AlreadyResponded (409) when the customer answered this poll before."""
    row = {"poll_id": poll.id, "profile_id": profile_id, "answers": answers, "completed_at": now}
    stmt = upsert(session, PollResponse).values(**row).on_conflict_do_nothing().returning(PollResponse.id)
    response_id = session.scalar(stmt)
    if response_id is None:
        raise AlreadyResponded(f"customer {profile_id} has already completed poll {poll.id}",
                               [{"pointer": "/profile", "code": "already_responded",
                                 "message": "one response per customer and poll"}])
    events.record(session, [events.Occurrence(profile_id, COMPLETED_EVENT, {"poll_id": poll.id}, now)])
    return response_id


def results(session: Session, poll: Poll) -> dict[str, Any]:
    """How many responses picked each answer, every answer listed (0 when nobody did);
    counted by the database over the responses' JSON, not by loading them."""
    counts = {(q, a): n for q, a, n in session.execute(_ANSWER_COUNTS[session.get_bind().dialect.name],
                                                         {"poll_id": poll.id})}
    questions = [{"id": q["id"], "text": q["text"], "multiple": q.get("multiple", False),
                  "answers": [{"id": a["id"], "text": a["text"], "count": counts.get((q["id"], a["id"]), 0)}
                              for a in q["answers"]]}
                 for q in poll.questions]
    return {"poll_id": poll.id, "responses": count_responses(session, poll.id), "questions": questions}


#: (question id, answer id, responses) of a poll, unnesting {question: [answers]} in SQL
_ANSWER_COUNTS = {
    "postgresql": text("SELECT q.key, a.value, count(*) FROM poll_responses r, json_each(r.answers) q, "
                       "json_array_elements_text(q.value) a WHERE r.poll_id = :poll_id GROUP BY q.key, a.value"),
    "sqlite": text("SELECT q.key, a.value, count(*) FROM poll_responses r, json_each(r.answers) q, "
                   "json_each(q.value) a WHERE r.poll_id = :poll_id GROUP BY q.key, a.value"),
}
