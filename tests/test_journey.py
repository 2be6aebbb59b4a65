"""Journey building blocks, end to end on SQLite and PostgreSQL with a real Redis and the
virtual clock: waiting for an event (or a timeout), a multi-way split, and an event
trigger's unique key (an order id starts one journey of a customer, however often it is
reported)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from engine.core.clock import iso
from engine.core.entry import enroll_entries
from engine.core.models import Campaign, Enrollment, Event, JourneyStep, Profile
from engine.journeys import events
from tests.support import (
    add_profiles,
    at_once,
    doc,
    launch,
    ok,
    points,
    positions,
    stats,
)

START = datetime(2026, 12, 1, 8, 0)
BIG_ORDER = [{"property": "total", "op": "gte", "value": 50}]


# --------------------------------------------------------------------------- helpers


def _customers(h, count: int, **fields) -> list[int]:
    """`count` customers with external ids p0, p1, ..."""
    with h.transaction() as s:
        return add_profiles(s, count, **fields)


def _launched(api, h, document: dict) -> int:
    campaign_id = ok(api.post("/api/campaigns", json=document), 201)["id"]
    ok(api.post(f"/api/campaigns/{campaign_id}/launch"))
    h.machine.run_due()
    return campaign_id


def _send(api, h, name: str, external_id: str, **properties) -> dict:
    """One event now (the virtual clock's now), then whatever it made due runs."""
    answer = ok(api.post("/api/events", json={"event": name, "profile": {"external_id": external_id},
                                              "properties": properties}), 201)
    h.machine.run_due()
    return answer


def _batch(api, h, items: list[tuple[str, str, dict]]) -> dict:
    """(event, external id, properties) items in one batch, now; then what it made due runs."""
    answer = ok(api.post("/api/events/batch", json={"events": [
        {"event": name, "profile": {"external_id": who}, "properties": props} for name, who, props in items]}))
    h.machine.run_due()
    return answer


def _node(api, campaign_id: int, node_id: str) -> dict:
    return ok(api.get(f"/api/campaigns/{campaign_id}/stats"))["nodes"][node_id]


def _steps(h, campaign_id: int, node_id: str, port: str) -> dict[int, datetime]:
    """profile id -> when their journey left `node_id` by `port`."""
    with h.session() as s:
        return dict(s.execute(select(JourneyStep.profile_id, JourneyStep.at).where(
            JourneyStep.campaign_id == campaign_id, JourneyStep.node_id == node_id, JourneyStep.port == port)).all())


def _wait_flow(timeout: str, where=BIG_ORDER) -> dict:
    """Everyone enters and waits for an order (of 50 or more): 10 points if it comes, 1 if not."""
    return doc([("all", "select_segment", {"source": "all"}),
                ("w", "wait_for_event", {"event": "order", "where": where, "timeout": timeout}),
                ("bought", "award_points", {"points": 10}), ("late", "award_points", {"points": 1})],
               [("all", "out", "w"), ("w", "event", "bought"), ("w", "timeout", "late")], name="Wait for an order")


def _at(h, delta: timedelta) -> None:
    """Move the virtual clock to START + 1 minute (the launch) + delta, running what falls due."""
    h.machine.advance_to(START + timedelta(minutes=1) + delta)


# --------------------------------------------------------------------------- wait for event


def test_wait_for_event_sends_each_customer_by_their_event_at_its_time_or_by_the_timeout(api, harness):
    ids = _customers(harness, 10)
    _send(api, harness, "order", "p9", total=100)  # before p9 arrives: does not count
    harness.machine.advance(timedelta(minutes=1))
    launched_at = harness.clock.now()
    cid = _launched(api, harness, _wait_flow("2d"))
    assert _node(api, cid, "w") == {"entered": 10, "waiting": 10, "left": {}}

    expected_event_times = {}
    for index, delta, total in ((0, timedelta(hours=1), 60), (1, timedelta(hours=5), 50),
                                (2, timedelta(days=1), 75.5), (3, timedelta(days=2, minutes=-1), 500)):
        _at(harness, delta)
        if index == 2:  # in a batch, beside events that must not count
            _batch(api, harness, [("order", "p4", {}), ("order", "p2", {"total": total}),
                                  ("view", "p5", {"total": 100})])
        else:
            _send(api, harness, "order", f"p{index}", total=total)
        expected_event_times[ids[index]] = harness.clock.now()
        assert _node(api, cid, "w")["left"] == {"event": len(expected_event_times)}, f"p{index} leaves at once"
        if index == 0:
            _at(harness, timedelta(hours=3))
            _send(api, harness, "order", "p4", total=10)  # too small: p4 keeps waiting
            assert _node(api, cid, "w")["waiting"] == 9

    deadline = launched_at + timedelta(days=2)
    harness.machine.advance_to(deadline - timedelta(seconds=1))
    assert _node(api, cid, "w") == {"entered": 10, "waiting": 6, "left": {"event": 4}}
    harness.machine.advance_to(deadline)
    assert _node(api, cid, "w") == {"entered": 10, "waiting": 0, "left": {"event": 4, "timeout": 6}}
    assert positions(harness, cid) == {("bought", "done"): 4, ("late", "done"): 6}
    assert _steps(harness, cid, "w", "event") == expected_event_times
    assert _steps(harness, cid, "w", "timeout") == {pid: deadline for pid in ids[4:]}
    assert points(harness) == {pid: 10 if i < 4 else 1 for i, pid in enumerate(ids)}


def test_the_node_decides_from_stored_events_when_a_wakeup_was_lost(api, harness):
    """Events written behind ingestion's back (no wakeup) are found when the node runs at the
    timeout, and one that came after the timeout does not count, however late the run."""
    ids = _customers(harness, 4)
    cid = _launched(api, harness, _wait_flow("1h"))
    with harness.transaction() as s:
        s.execute(insert(Event), [
            {"profile_id": ids[0], "name": "order", "properties": {"total": 80},
             "occurred_at": START + timedelta(minutes=30)},
            {"profile_id": ids[1], "name": "order", "properties": {"total": 80},
             "occurred_at": START + timedelta(hours=1)},
            {"profile_id": ids[2], "name": "order", "properties": {"total": 80},
             "occurred_at": START + timedelta(hours=1, seconds=30)},
        ])
    harness.machine.advance_to(START + timedelta(minutes=59))
    assert _node(api, cid, "w")["waiting"] == 4, "nobody was woken"
    harness.clock.set(START + timedelta(hours=1, minutes=5))  # the timeout's job runs late
    harness.machine.run_due()
    assert _node(api, cid, "w")["left"] == {"event": 2, "timeout": 2}
    assert set(_steps(harness, cid, "w", "event")) == {ids[0], ids[1]}


def test_an_event_in_a_paused_campaign_lets_the_customer_go_at_resume(api, harness):
    _customers(harness, 2)
    cid = _launched(api, harness, _wait_flow("7d"))
    ok(api.post(f"/api/campaigns/{cid}/pause"))
    harness.machine.advance(timedelta(hours=2))
    _send(api, harness, "order", "p0", total=99)
    assert _node(api, cid, "w")["waiting"] == 2, "paused: nobody moves"
    harness.machine.advance(timedelta(hours=1))
    ok(api.post(f"/api/campaigns/{cid}/resume"))
    harness.machine.run_due()
    assert _node(api, cid, "w") == {"entered": 2, "waiting": 1, "left": {"event": 1}}


# --------------------------------------------------------------------------- multi-way split

TIER = {0: "gold", 1: "silver", 2: None}
PATHS = [
    {"id": "vip", "name": "VIP", "rules": {"rules": [{"field": "points", "op": "gte", "value": 100}]}},
    {"id": "nobody", "rules": {"match": "any", "rules": []}},
    {"id": "gold", "name": "Gold", "rules": {"rules": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]}},
    {"id": "silver", "rules": {"rules": [{"field": "attributes.tier", "op": "eq", "value": "silver"}]}},
]


def test_multi_split_routes_each_customer_by_the_first_matching_path_else_by_else(harness):
    with harness.transaction() as s:
        ids = add_profiles(s, 13, points=lambda i: 150 if i < 3 else 0,
                           attributes=lambda i: {"tier": TIER[i % 3]} if TIER[i % 3] else {})
    awards = {"vip": 1000, "nobody": 5000, "gold": 100, "silver": 10, "else": 1}
    document = doc([("all", "select_segment", {"source": "all"}), ("split", "multi_split", {"paths": PATHS}),
                    *[(f"to_{port}", "award_points", {"points": n}) for port, n in awards.items()]],
                   [("all", "out", "split"), *[("split", port, f"to_{port}") for port in awards]])
    cid = launch(harness, document)
    assert stats(harness, cid)["split"]["left"] == {"vip": 3, "gold": 4, "silver": 3, "else": 3}  # nobody: none
    expected = {0: 1150, 1: 1150, 2: 1150, 3: 100, 6: 100, 9: 100, 12: 100, 4: 10, 7: 10, 10: 10, 5: 1, 8: 1, 11: 1}
    assert points(harness) == {ids[i]: n for i, n in expected.items()}


def test_multi_split_ports_are_its_path_ids_then_else(api):
    ports = ok(api.post("/api/node-types/multi_split/ports", json={"settings": {"paths": PATHS}}))["ports"]
    assert ports == ["vip", "nobody", "gold", "silver", "else"]
    described = {t["type"]: t for t in ok(api.get("/api/node-types"))}
    assert described["multi_split"]["dynamic_ports"] is True
    assert described["wait_for_event"]["ports"] == ["event", "timeout"] and described["wait_for_event"]["delay"]
    assert "key_property" in described["event_trigger"]["schema"]["properties"]


# --------------------------------------------------------------------------- settings


def test_bad_settings_are_refused_naming_the_field(api):
    document = doc([
        ("t", "event_trigger", {"event": "order", "key_property": "order id"}),
        ("w", "wait_for_event", {"event": "order", "timeout": "0m",
                                 "where": [{"property": "total", "op": "in", "value": [1, "a"]}]}),
        ("s", "multi_split", {"paths": [{"id": "a", "rules": {}}, {"id": "a", "rules": {}},
                                        {"id": "else", "rules": {}},
                                        {"id": "b", "rules": {"rules": [{"field": "attributes.x", "op": "in",
                                                                         "value": [1, "a"]}]}}]}),
        ("w2", "wait_for_event", {"timeout": "2d"}),
    ], [("t", "out", "w"), ("w", "event", "s"), ("w", "timeout", "w2")])
    problems = ok(api.post("/api/campaigns/validate", json=document))["problems"]
    errors = {p["pointer"]: p for p in problems if p["severity"] == "error"}
    assert set(errors) == {"/nodes/0/settings/key_property", "/nodes/1/settings/timeout",
                           "/nodes/1/settings/where/0/value", "/nodes/2/settings/paths/1/id",
                           "/nodes/2/settings/paths/2/id", "/nodes/2/settings/paths/3/rules/rules/0/value",
                           "/nodes/3/settings/event"}, problems
    assert "'Unique key property'" in errors["/nodes/0/settings/key_property"]["message"]
    assert "'0m'" in errors["/nodes/1/settings/timeout"]["message"]
    assert "'a'" in errors["/nodes/2/settings/paths/1/id"]["message"]
    assert "'else'" in errors["/nodes/2/settings/paths/2/id"]["message"]


# --------------------------------------------------------------------------- event keys


def _keyed_flow(frequency: str = "each") -> dict:
    return doc([("t", "event_trigger", {"event": "order", "key_property": "order_id", "frequency": frequency,
                                        "period": "1d"}),
                ("pts", "award_points", {"points": 1})], [("t", "out", "pts")], name=f"Orders ({frequency})")


def _keys(h, campaign_id: int) -> Counter:
    """(external id, key) -> journeys."""
    with h.session() as s:
        return Counter(s.execute(select(Profile.external_id, Enrollment.entry_key)
                                 .join(Profile, Profile.id == Enrollment.profile_id)
                                 .where(Enrollment.campaign_id == campaign_id)).all())


def test_an_order_id_starts_one_journey_of_a_customer_in_a_batch_and_across_requests(api, harness):
    cid = _launched(api, harness, _keyed_flow())
    answer = _batch(api, harness, [
        ("order", "c1", {"order_id": "A1"}), ("order", "c1", {"order_id": "A1"}), ("order", "c1", {"order_id": "A2"}),
        ("order", "c1", {}), ("order", "c2", {"order_id": "A1"}), ("order", "c1", {"order_id": 1001}),
        ("order", "c1", {"order_id": "1001"}), ("order", "c1", {"order_id": None}),
    ])
    assert answer["journeys_started"] == 6, "A1, A2, 1001 and the two without a key for c1; A1 for c2"
    assert _send(api, harness, "order", "c1", order_id="A1")["journeys_started"] == 0
    assert _send(api, harness, "order", "c1", order_id=1001.0)["journeys_started"] == 0
    assert _send(api, harness, "order", "c1", order_id="A3")["journeys_started"] == 1
    answer = _batch(api, harness, [("order", "c1", {"order_id": "A2"}), ("order", "c2", {"order_id": "A1"}),
                                   ("order", "c2", {"order_id": "A9"})])
    assert answer["journeys_started"] == 1
    assert _keys(harness, cid) == {("c1", "A1"): 1, ("c1", "A2"): 1, ("c1", "1001"): 1, ("c1", "A3"): 1,
                                   ("c1", None): 2, ("c2", "A1"): 1, ("c2", "A9"): 1}
    assert _node(api, cid, "t")["entered"] == 8
    assert _node(api, cid, "pts")["entered"] == 8


def test_the_frequency_rule_still_applies_and_a_refused_order_keeps_its_key_free(api, harness):
    cid = _launched(api, harness, _keyed_flow("period"))
    started = []
    for hours, order in ((0, "A1"), (1, "A2"), (25, "A2"), (50, "A1")):
        harness.machine.advance_to(START + timedelta(hours=hours))
        started.append(_send(api, harness, "order", "c1", order_id=order)["journeys_started"])
    assert started == [1, 0, 1, 0], "A2 first came within the period; A1 is taken"
    assert _keys(harness, cid) == {("c1", "A1"): 1, ("c1", "A2"): 1}


def test_concurrent_requests_with_one_order_id_start_one_journey(api, harness):
    cid = _launched(api, harness, _keyed_flow())
    event = events.parse_event({"event": "order", "profile": {"external_id": "c1"}, "properties": {"order_id": "X"}})
    _send(api, harness, "signup", "c1")  # the customer exists: the racers only race on the key
    def racer() -> int:
        with harness.transaction() as s:
            return events.ingest(s, [event]).journeys_started

    assert sorted(at_once(6, racer)) == [0, 0, 0, 0, 0, 1]
    harness.machine.run_due()
    assert _keys(harness, cid) == {("c1", "X"): 1}
    assert _node(api, cid, "t")["entered"] == 1


def test_a_key_taken_meanwhile_is_inserted_nowhere_and_counted_nowhere(api, harness):
    """The unique index is the last word: rows whose key exists are skipped by the insert
    itself (ON CONFLICT DO NOTHING), and the counters count only the rows inserted."""
    cid = _launched(api, harness, _keyed_flow())
    pid = _customers(harness, 1)[0]
    with harness.session() as s:
        version_id = s.get(Campaign, cid).version_id
    now = harness.clock.now()
    entry = {"profile_id": pid, "entered_at": now, "entry_key": "K"}
    with harness.transaction() as s:
        assert enroll_entries(s, cid, version_id, "t", [entry, dict(entry), {**entry, "entry_key": None}], now) == 2
    with harness.transaction() as s:
        assert enroll_entries(s, cid, version_id, "t", [dict(entry)], now) == 0
    assert _node(api, cid, "t")["entered"] == 2
    assert _keys(harness, cid) == {("p0", "K"): 1, ("p0", None): 1}


@pytest.mark.parametrize("value", [True, {"id": 1}, [1], ""])
def test_a_key_value_that_is_not_a_string_or_number_enrols_as_without_a_key(api, harness, value):
    cid = _launched(api, harness, _keyed_flow())
    for _ in range(2):
        assert _send(api, harness, "order", "c1", order_id=value)["journeys_started"] == 1
    assert _keys(harness, cid) == {("c1", None): 2}


def test_a_long_key_is_kept_as_its_digest_and_still_unique(api, harness):
    cid = _launched(api, harness, _keyed_flow())
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    assert _batch(api, harness, [("order", "c1", {"order_id": long_a}), ("order", "c1", {"order_id": long_b}),
                                 ("order", "c1", {"order_id": long_a})])["journeys_started"] == 2
    keys = _keys(harness, cid)
    assert sum(keys.values()) == 2 and all(k.startswith("sha256:") and len(k) <= 255 for _, k in keys)


def test_a_nested_key_property(api, harness):
    document = _keyed_flow()
    document["nodes"][0]["settings"]["key_property"] = "order.id"
    cid = _launched(api, harness, document)
    answer = _batch(api, harness, [("order", "c1", {"order": {"id": 7}}), ("order", "c1", {"order": {"id": 7}}),
                                   ("order", "c1", {"order": 7})])
    assert answer["journeys_started"] == 2
    assert _keys(harness, cid) == {("c1", "7"): 1, ("c1", None): 1}


def test_a_timestamped_event_ahead_of_our_clock_wakes_at_its_time(api, harness):
    _customers(harness, 1)
    cid = _launched(api, harness, _wait_flow("1d"))
    harness.machine.advance(timedelta(hours=1))
    ahead = harness.clock.now() + timedelta(minutes=3)
    ok(api.post("/api/events", json={"event": "order", "profile": {"external_id": "p0"},
                                     "properties": {"total": 70}, "timestamp": iso(ahead)}), 201)
    harness.machine.run_due()
    assert _node(api, cid, "w")["waiting"] == 1, "the event has not happened yet on our clock"
    harness.machine.advance_to(ahead)
    assert _node(api, cid, "w")["left"] == {"event": 1}


def test_a_simulation_sends_waiting_customers_by_their_events_on_its_virtual_clock():
    from engine.journeys.simulate import Simulation

    with Simulation(_wait_flow("2d"), start=START) as sim:
        sim.add_profiles([{"email": f"c{i}@example.com"} for i in range(5)])
        sim.add_events([{"at": "+1h", "event": "order", "profile": 0, "properties": {"total": 70}},
                        {"at": "+1d", "event": "order", "profile": 1, "properties": {"total": 20}},
                        {"at": "+3d", "event": "order", "profile": 2, "properties": {"total": 90}}])
        result = sim.run(until=timedelta(days=5))
    assert result.nodes["w"] == {"entered": 5, "waiting": 0, "left": {"event": 1, "timeout": 4}}
