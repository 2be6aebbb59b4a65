"""Polls on SQLite and PostgreSQL: CRUD whose bad input names the field and changes nothing,
responses checked against their poll (one per customer, recorded as `poll.completed`), paged
responses and per-answer results; and the limit-poll node, whose counts come from the
database, on the virtual clock (per total, and per local day in the account time zone)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from engine.core.models import Base, Event, JourneyStep, Profile
from tests.support import add_profiles, doc, error_of, ok, positions, stats

QUESTIONS = [
    {"id": "colour", "text": "Your favourite colour?", "answers": [{"id": "red", "text": "Red"},
                                                                  {"id": "blue", "text": "Blue"}]},
    {"id": "days", "text": "Which days do you shop?", "multiple": True,
     "answers": [{"id": "sat", "text": "Saturday"}, {"id": "sun", "text": "Sunday"}, {"id": "mon", "text": "Monday"}]},
]
POLL = {"name": "Shopping habits", "description": "Two questions", "questions": QUESTIONS}


def snapshot(harness) -> dict[str, list]:
    with harness.session() as s:
        return {t.name: sorted(map(tuple, s.execute(select(t))), key=repr) for t in Base.metadata.sorted_tables
                if t.name in ("polls", "poll_responses", "profiles", "events")}


def pointers(response, status: int = 400, code: str = "invalid_input") -> list[str]:
    return [d["pointer"] for d in error_of(response, status, code)["details"]]


def make_poll(api, **changes) -> dict:
    return ok(api.post("/api/polls", json={**POLL, **changes}), 201)


def answer(api, poll_id: int, who: dict, answers: dict, status: int = 201):
    response = api.post(f"/api/polls/{poll_id}/responses", json={**who, "answers": answers})
    return ok(response, status) if status < 400 else response


# --------------------------------------------------------------------------- CRUD


def test_polls_are_created_listed_changed_and_deleted(api):
    poll = make_poll(api)
    assert poll["questions"][0]["multiple"] is False and poll["questions"][1]["multiple"] is True
    assert poll["response_count"] == 0
    assert [p["name"] for p in ok(api.get("/api/polls"))["items"]] == ["Shopping habits"]
    assert ok(api.get(f"/api/polls/{poll['id']}"))["questions"] == poll["questions"]

    changed = ok(api.patch(f"/api/polls/{poll['id']}", json={"name": "Habits", "questions": QUESTIONS[:1]}))
    assert changed["name"] == "Habits" and changed["description"] == "Two questions" and len(changed["questions"]) == 1
    make_poll(api, name="Other")
    assert [p["name"] for p in ok(api.get("/api/polls", query_string={"q": "hab"}))["items"]] == ["Habits"]
    assert ok(api.delete(f"/api/polls/{poll['id']}")) == {"deleted": poll["id"]}
    error_of(api.get(f"/api/polls/{poll['id']}"), 404, "not_found")


BAD_POLLS = [
    ({**POLL, "name": " "}, ["/name"]),
    ({"questions": QUESTIONS}, ["/name"]),
    ({**POLL, "colour": "red"}, ["/colour"]),
    ({**POLL, "questions": []}, ["/questions"]),
    ({**POLL, "questions": [QUESTIONS[0], {**QUESTIONS[1], "id": "colour"}]}, ["/questions/1/id"]),
    ({**POLL, "questions": [{**QUESTIONS[0], "answers": []}]}, ["/questions/0/answers"]),
    ({**POLL, "questions": [{**QUESTIONS[0], "answers": [{"id": "a", "text": "A"}, {"id": "a", "text": "B"}]}]},
     ["/questions/0/answers/1/id"]),
    ({**POLL, "questions": [{**QUESTIONS[0], "id": "has space"}]}, ["/questions/0/id"]),
    ({**POLL, "questions": [{**QUESTIONS[0], "multiple": "yes"}]}, ["/questions/0/multiple"]),
    ({**POLL, "questions": [{**QUESTIONS[0], "text": ""}, {**QUESTIONS[1], "answers": [{"id": "x"}]}]},
     ["/questions/0/text", "/questions/1/answers/0/text"]),
    ({**POLL, "questions": [{**QUESTIONS[0], "weight": 2}]}, ["/questions/0/weight"]),
]


@pytest.mark.parametrize("body, expected", BAD_POLLS, ids=[str(e) for _, e in BAD_POLLS])
def test_a_bad_poll_is_refused_naming_every_field_and_changes_nothing(api, harness, body, expected):
    existing = make_poll(api, name="Kept")
    before = snapshot(harness)
    assert pointers(api.post("/api/polls", json=body)) == expected
    patch = {k: v for k, v in body.items() if k != "questions" or v != QUESTIONS}
    if set(patch) - {"description"}:
        assert pointers(api.patch(f"/api/polls/{existing['id']}", json=patch)) == expected
    assert snapshot(harness) == before


def test_a_taken_name_is_a_conflict(api, harness):
    make_poll(api)
    other = make_poll(api, name="Second")
    before = snapshot(harness)
    assert pointers(api.post("/api/polls", json=POLL), 409, "name_taken") == ["/name"]
    assert pointers(api.patch(f"/api/polls/{other['id']}", json={"name": POLL["name"]}), 409, "name_taken") == ["/name"]
    assert snapshot(harness) == before


# --------------------------------------------------------------------------- responses


def test_responses_are_checked_recorded_once_and_counted(api, harness):
    poll = make_poll(api)
    with harness.transaction() as s:
        (known,) = add_profiles(s, 1)
    first = answer(api, poll["id"], {"profile": {"external_id": "new-1"}}, {"colour": ["red"], "days": ["sat", "sun"]})
    assert first["external_id"] == "new-1" and first["answers"] == {"colour": ["red"], "days": ["sat", "sun"]}
    answer(api, poll["id"], {"profile_id": known}, {"colour": ["blue"], "days": ["sat"]})
    answer(api, poll["id"], {"profile": {"email": "Cy@Example.com"}}, {"days": ["mon"], "colour": ["red"]})

    results = ok(api.get(f"/api/polls/{poll['id']}/results"))
    assert results["responses"] == 3
    assert {a["id"]: a["count"] for a in results["questions"][0]["answers"]} == {"red": 2, "blue": 1}
    assert {a["id"]: a["count"] for a in results["questions"][1]["answers"]} == {"sat": 2, "sun": 1, "mon": 1}
    page = ok(api.get(f"/api/polls/{poll['id']}/responses", query_string={"limit": 2}))
    assert (page["total"], len(page["items"]), page["items"][0]["external_id"]) == (3, 2, "new-1")
    rest = ok(api.get(f"/api/polls/{poll['id']}/responses", query_string={"limit": 2, "offset": 2}))
    assert [r["profile_id"] for r in rest["items"]] != [r["profile_id"] for r in page["items"]] and \
        len(rest["items"]) == 1
    assert ok(api.get("/api/polls"))["items"][0]["response_count"] == 3

    completed = ok(api.get("/api/events", query_string={"event": "poll.completed"}))["items"]
    assert len(completed) == 3 and {e["properties"]["poll_id"] for e in completed} == {poll["id"]}

    before = snapshot(harness)
    again = answer(api, poll["id"], {"profile_id": known}, {"colour": ["red"], "days": ["sat"]}, status=409)
    error_of(again, 409, "already_responded")
    again = answer(api, poll["id"], {"profile": {"email": "cy@example.com"}}, {"colour": ["red"], "days": ["sat"]},
                   status=409)
    error_of(again, 409, "already_responded")
    assert snapshot(harness) == before


BAD_ANSWERS = [
    ({"colour": ["red"], "days": ["sat"], "age": ["x"]}, ["/answers/age"]),
    ({"colour": ["green"], "days": ["sat"]}, ["/answers/colour/0"]),
    ({"colour": ["red", "blue"], "days": ["sat"]}, ["/answers/colour"]),
    ({"colour": ["red"]}, ["/answers/days"]),
    ({"colour": [], "days": ["sat"]}, ["/answers/colour"]),
    ({"colour": "red", "days": ["sat"]}, ["/answers/colour"]),
    ({"colour": ["red"], "days": ["sat", "sat"]}, ["/answers/days/1"]),
    ([], ["/answers"]),
]


@pytest.mark.parametrize("answers, expected", BAD_ANSWERS, ids=[str(e) for _, e in BAD_ANSWERS])
def test_a_bad_response_names_the_field_and_changes_nothing(api, harness, answers, expected):
    poll = make_poll(api)
    before = snapshot(harness)
    assert pointers(answer(api, poll["id"], {"profile": {"external_id": "u1"}}, answers, status=400)) == expected
    assert snapshot(harness) == before


def test_a_response_must_name_one_customer_who_exists(api, harness):
    poll = make_poll(api)
    fine = {"colour": ["red"], "days": ["sat"]}
    before = snapshot(harness)
    assert pointers(answer(api, poll["id"], {}, fine, status=400)) == ["/profile"]
    assert pointers(answer(api, poll["id"], {"profile_id": 999_999}, fine, status=400)) == ["/profile_id"]
    assert pointers(answer(api, poll["id"], {"profile_id": "1"}, fine, status=400)) == ["/profile_id"]
    assert pointers(answer(api, poll["id"], {"profile": {}}, fine, status=400)) == ["/profile"]
    assert pointers(answer(api, poll["id"], {"profile": {"external_id": "a"}, "mood": 1}, fine, status=400)) == \
        ["/mood"]
    error_of(answer(api, 999_999, {"profile": {"external_id": "a"}}, fine, status=404), 404, "not_found")
    assert snapshot(harness) == before


def test_once_answered_a_poll_keeps_every_answer_customers_gave(api, harness):
    poll = make_poll(api)
    answer(api, poll["id"], {"profile": {"external_id": "u1"}}, {"colour": ["red"], "days": ["sat", "sun"]})
    before = snapshot(harness)
    shrunk = [{**QUESTIONS[0], "answers": QUESTIONS[0]["answers"][1:]}, QUESTIONS[1]]
    for questions in (shrunk, QUESTIONS[:1], [QUESTIONS[0], {**QUESTIONS[1], "multiple": False}]):
        error_of(api.patch(f"/api/polls/{poll['id']}", json={"questions": questions}), 409, "invalid_state")
    assert snapshot(harness) == before
    grown = [{**QUESTIONS[0], "text": "Colour?", "answers": [*QUESTIONS[0]["answers"], {"id": "green", "text": "G"}]},
             QUESTIONS[1]]
    assert ok(api.patch(f"/api/polls/{poll['id']}", json={"questions": grown}))["questions"][0]["text"] == "Colour?"


# --------------------------------------------------------------------------- the limit-poll node


def limited(poll_id: int, **settings) -> dict:
    """visit -> limit_poll; `ask` ends the journey (the site asks them)."""
    return doc([("visit", "event_trigger", {"event": "visit"}),
                ("limit", "limit_poll", {"poll_id": poll_id, "max_completions": 5, **settings})],
               [("visit", "out", "limit")], name="Poll the visitors")


def visit(api, harness, *external_ids: str) -> None:
    ok(api.post("/api/events/batch", json={"events": [{"event": "visit", "profile": {"external_id": e}}
                                                       for e in external_ids]}))
    harness.machine.run_due()


def asked(harness, campaign_id: int) -> list[int]:
    with harness.session() as s:
        return list(s.scalars(select(JourneyStep.profile_id).where(
            JourneyStep.campaign_id == campaign_id, JourneyStep.port == "ask").order_by(JourneyStep.id)))


def complete(api, poll_id: int, profile_ids: list[int]) -> None:
    for pid in profile_ids:
        answer(api, poll_id, {"profile_id": pid}, {"colour": ["red"], "days": ["sat"]})


def test_a_poll_closed_at_its_limit_sends_everyone_else_to_limit_reached(api, harness):
    poll = make_poll(api)
    cid = ok(api.post("/api/campaigns?launch=true", json=limited(poll["id"], max_open=5)), 201)["id"]
    visit(api, harness, *[f"v{i}" for i in range(8)])
    assert stats(harness, cid)["limit"]["left"] == {"ask": 5}
    assert positions(harness, cid)[("limit", "active")] == 3, "the other three wait for a place"

    complete(api, poll["id"], asked(harness, cid)[:4])
    harness.machine.advance(timedelta(minutes=10))
    assert stats(harness, cid)["limit"]["left"] == {"ask": 5}, "4 done + 1 open: no room yet"
    complete(api, poll["id"], asked(harness, cid)[4:])
    harness.machine.advance(timedelta(minutes=10))
    assert stats(harness, cid)["limit"]["left"] == {"ask": 5, "limit_reached": 3}
    assert ("limit", "active") not in positions(harness, cid)

    visit(api, harness, "late")
    assert stats(harness, cid)["limit"]["left"] == {"ask": 5, "limit_reached": 4}


def test_at_most_max_open_are_asked_at_once_and_a_silent_one_frees_their_place(api, harness):
    poll = make_poll(api)
    cid = ok(api.post("/api/campaigns?launch=true", json=limited(poll["id"], max_open=2, open_for="1h")), 201)["id"]
    visit(api, harness, *[f"v{i}" for i in range(8)])
    assert stats(harness, cid)["limit"]["left"] == {"ask": 2}

    complete(api, poll["id"], asked(harness, cid)[:1])
    harness.machine.advance(timedelta(minutes=10))
    assert stats(harness, cid)["limit"]["left"] == {"ask": 3}, "one answered: one more place"
    harness.machine.advance(timedelta(minutes=50))  # the first silent one asked an hour ago
    assert stats(harness, cid)["limit"]["left"] == {"ask": 4}
    harness.machine.advance(timedelta(minutes=10))  # so is the one asked at 08:10
    assert stats(harness, cid)["limit"]["left"] == {"ask": 5}


def test_a_daily_limit_starts_again_on_the_next_local_day(api, harness):
    harness.rt.executor.account_tz = ZoneInfo("Europe/Paris")
    poll = make_poll(api)
    cid = ok(api.post("/api/campaigns?launch=true", json=limited(poll["id"], per="day", max_open=5)), 201)["id"]
    visit(api, harness, *[f"v{i}" for i in range(8)])  # 09:00 in Paris
    complete(api, poll["id"], asked(harness, cid))
    harness.machine.advance(timedelta(minutes=10))
    assert stats(harness, cid)["limit"]["left"] == {"ask": 5, "limit_reached": 3}

    harness.machine.advance_to(datetime(2026, 12, 1, 22, 50))  # 23:50 in Paris: still the same day
    visit(api, harness, "w1", "w2")
    assert stats(harness, cid)["limit"]["left"] == {"ask": 5, "limit_reached": 5}
    harness.machine.advance_to(datetime(2026, 12, 1, 23, 5))  # 00:05 in Paris (still Dec 1 in UTC)
    visit(api, harness, "w3", "w4", "v0")
    assert stats(harness, cid)["limit"]["left"] == {"ask": 8, "limit_reached": 5}


def test_a_deleted_poll_is_closed_and_a_used_poll_cannot_be_deleted(api, harness):
    poll = make_poll(api)
    ok(api.post("/api/campaigns?launch=true", json=limited(poll["id"])), 201)
    error_of(api.delete(f"/api/polls/{poll['id']}"), 409, "invalid_state")
    assert ok(api.get(f"/api/polls/{poll['id']}"))["id"] == poll["id"]


def test_the_poll_setting_is_a_dropdown_of_polls(api):
    declared = next(t for t in ok(api.get("/api/node-types")) if t["type"] == "limit_poll")
    assert declared["schema"]["properties"]["poll_id"]["x-resource"] == "polls"
    assert declared["ports"] == ["ask", "limit_reached"] and declared["category"] == "flow"
    make_poll(api)
    assert {"id", "name"} <= set(ok(api.get("/api/polls"))["items"][0])


def test_profiles_named_in_responses_are_created_like_event_senders(api, harness):
    poll = make_poll(api)
    answer(api, poll["id"], {"profile": {"external_id": "brand-new"}}, {"colour": ["red"], "days": ["sat"]})
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Profile).where(Profile.external_id == "brand-new")) == 1
        assert s.scalar(select(func.count()).select_from(Event).where(Event.name == "poll.completed")) == 1
