"""Campaigns that could never run: a duration too long for any date is refused when the
campaign is saved; a node that keeps failing suspends its campaign, naming the node and the
error, in the campaign's status reason and in /metrics; resuming tries the node again, and
its customers, who waited where they were, move on."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from engine.core import registry
from engine.core.graph import with_defaults
from engine.core.registry import NodeType
from engine.core.validation import settings_errors
from engine.journeys import campaigns
from engine.sdk import DURATION
from tests.conftest import START
from tests.support import add_profiles, doc, error_of, ok, points, positions, stats
from tests.test_ops import ours, scrape

ALL = ("all", "select_segment", {"source": "all"})
TOO_LONG = "99999999999w"  # matches the duration pattern; beyond any date


# --------------------------------------------------------------------------- durations


def _duration_fields(schema: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The settings paths of every duration a schema holds: duration texts, and the amount
    of an amount and time unit pair."""
    if not isinstance(schema, Mapping):
        return
    if schema.get("pattern") == DURATION["pattern"]:
        yield path
    properties = schema.get("properties", {})
    if "amount" in properties and "days" in properties.get("unit", {}).get("enum", []):
        yield (*path, "amount")
    for name, sub in properties.items():
        yield from _duration_fields(sub, (*path, name))


def _with(settings: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    settings = dict(settings)
    if len(path) == 1:
        settings[path[0]] = value
    else:
        settings[path[0]] = _with(settings.get(path[0]) or {}, path[1:], value)
    return settings


def test_every_duration_of_every_node_type_is_at_most_ten_years():
    found = set()
    for kind in registry.all_types():
        for path in _duration_fields(kind.schema):
            found.add((kind.type, "/".join(path)))
            value = 1e308 if path[-1] == "amount" else TOO_LONG
            settings = _with(with_defaults(kind.schema, {}), path, value)
            if path[-1] == "amount":
                settings = _with(settings, (*path[:-1], "unit"), "weeks")
            pointer = "/settings/" + "/".join(path)
            phrases = [phrase for at, phrase in settings_errors(kind.schema, settings) if at == pointer]
            assert phrases and phrases[0].startswith("must be at most 10 years: '"), (kind.type, pointer, phrases)
    assert found == {("wait", "amount"), ("wait_for_event", "timeout"), ("ab_test", "evaluation_period"),
                     ("schedule_trigger", "every"), ("event_trigger", "period"), ("show_popup", "lifetime"),
                     ("limit_poll", "open_for"), ("accrue_bonus_points", "content/expires_in")}


def test_a_wait_of_1e308_weeks_cannot_be_saved(api, harness):
    before = ok(api.get("/api/campaigns"))["total"]
    document = doc([ALL, ("w", "wait", {"amount": 1e308, "unit": "weeks"})], [("all", "out", "w")])
    error = error_of(api.post("/api/campaigns", json=document), 422, "invalid_document")
    assert [(p["pointer"], p["message"]) for p in error["details"]] == [
        ("/nodes/1/settings/amount", "'Wait': must be at most 10 years: 'Wait for' is "
                                     "1e+308 weeks.")]
    assert ok(api.get("/api/campaigns"))["total"] == before


def test_ten_years_is_the_longest_wait_and_goal(api):
    def problems(amount: float, within: str) -> list[tuple[str, str]]:
        document = doc([ALL, ("w", "wait", {"amount": amount, "unit": "days"})], [("all", "out", "w")],
                       goal={"event": "purchase", "within": within})
        answer = ok(api.post("/api/campaigns/validate", json=document))
        return [(p["pointer"], p["message"]) for p in answer["problems"] if p["severity"] == "error"]

    assert problems(3650, "520w") == []
    assert problems(3651, TOO_LONG) == [
        ("/goal/within", f"The campaign field 'goal/within' must be at most 10 years: 'Goal reached within' is "
                         f"'{TOO_LONG}'."),
        ("/nodes/1/settings/amount", "'Wait': must be at most 10 years: 'Wait for' is "
                                     "3651 days.")]


# --------------------------------------------------------------------------- a node that keeps failing


class Score(NodeType):
    """Fails while `broken` (think of a scoring service that is down), then lets everyone out."""

    type = "test.score"
    label = "Score"
    category = "flow"
    broken = True

    def process(self, batch):
        if Score.broken:
            raise ZeroDivisionError("division by zero")
        return {"out": batch}


REASON = ("The node 'Risk score' failed 5 times in a row: ZeroDivisionError: division by zero. Its customers wait "
          "where they are; fix the cause, then resume the campaign.")


@pytest.fixture
def score(isolated_registry):
    isolated_registry.register(Score)
    Score.broken = True
    yield Score
    Score.broken = True


def _minute(h) -> bool:
    """Move to the next scheduled job (the sweep, once a minute) and run what is due;
    whether a job failed."""
    h.clock.set(h.machine.next_scheduled())
    return _run(h)


def _run(h) -> bool:
    """Run what is due now; whether a job failed."""
    try:
        h.machine.run_due()
    except RuntimeError as exc:
        assert "RQ job(s) failed" in str(exc)
        return True
    return False


def test_a_node_that_keeps_failing_suspends_its_campaign_and_resuming_tries_again(api, harness, score):
    h = harness
    with h.transaction() as s:
        add_profiles(s, 20)
    document = doc([ALL, ("pts", "award_points", {"points": 7}), ("score", "test.score", {}),
                    ("bonus", "award_points", {"points": 1})],
                   [("all", "out", "pts"), ("pts", "out", "score"), ("score", "out", "bonus")])
    document["nodes"][2]["label"] = "Risk score"
    with h.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, h.clock.now())
    h.rt.wakeups.schedule_sweep(timedelta(0))  # the sweeper re-wakes overdue customers once a minute
    queue = h.rt.settings.queue_name

    def metrics() -> tuple[float, float, float]:
        m = ours(scrape(api), queue)
        return m["cc_campaigns{active}"], m["cc_campaigns{suspended}"], m["cc_nodes_failing"]

    def campaign() -> dict:
        return ok(api.get(f"/api/campaigns/{cid}"))

    # the launch's wakeup and the next three sweeps' fail: still active, the failures show
    assert [_run(h)] + [_minute(h) for _ in range(3)] == [True] * 4
    assert (campaign()["status"], campaign()["status_reason"]) == ("active", "")
    assert metrics() == (1.0, 0.0, 1.0)
    # the fifth failure in a row suspends it, saying which node and why; nothing runs after
    assert _minute(h) is True
    assert (campaign()["status"], campaign()["status_reason"]) == ("suspended", REASON)
    assert metrics() == (0.0, 1.0, 1.0)
    assert [_minute(h) for _ in range(3)] == [False] * 3
    # every customer waits where they were: nothing of the failed cascades was kept
    assert positions(h, cid) == {("all", "active"): 20}
    assert set(points(h).values()) == {0}

    # resumed without a fix: five fresh tries, then suspended again
    ok(api.post(f"/api/campaigns/{cid}/resume"))
    assert campaign()["status"] == "active"
    assert _run(h) is True  # the resume's own wakeup
    assert [_minute(h) for _ in range(3)] == [True] * 3
    assert metrics() == (1.0, 0.0, 1.0)
    assert _minute(h) is True
    assert (campaign()["status"], campaign()["status_reason"]) == ("suspended", REASON)

    # fixed and resumed: everyone moves on, once
    score.broken = False
    ok(api.post(f"/api/campaigns/{cid}/resume"))
    h.machine.run_due()
    assert positions(h, cid) == {("bonus", "done"): 20}
    assert set(points(h).values()) == {8}
    assert stats(h, cid)["score"]["left"] == {"out": 20}
    assert metrics()[2] == 0.0
    assert (campaign()["status"], campaign()["status_reason"]) == ("active", "")
    assert h.clock.now() == START + timedelta(minutes=11)
