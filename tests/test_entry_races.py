"""Re-entry rules hold under concurrency: a customer's events arriving in concurrent requests
start one journey of a "once" campaign, and one per period of a "once per period" one, on
both databases, whether the requests race in one server's threads or in several servers.

What broke before: on PostgreSQL, four concurrent batches with the same 2,000 customers'
events started 8,000 journeys of a "once" campaign, each answer claiming 1,000 (the rule
read earlier journeys without holding anything, so every racer saw none).
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.core.models import Enrollment, Profile
from engine.journeys import campaigns, events
from tests.served import CLI, answering, api, api_key, free_port, stop, wait_for
from tests.support import at_once, doc

CUSTOMERS = 500


def _flow(frequency: str) -> dict:
    return doc([("t", "event_trigger", {"event": "visit", "frequency": frequency, "period": "1d"}),
                ("pts", "award_points", {"points": 1})], [("t", "out", "pts")], name=f"Visits ({frequency})")


def _launch(h, document: dict) -> int:
    with h.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, h.clock.now())
    return cid


def _visits(count: int, **extra) -> list[dict]:
    return [{"event": "visit", "profile": {"external_id": f"c{n}"}, **extra} for n in range(count)]


def _journeys_per_customer(h, campaign_id: int) -> Counter:
    with h.session() as s:
        return Counter(Counter(s.scalars(select(Enrollment.profile_id).where(
            Enrollment.campaign_id == campaign_id, Enrollment.parent_id.is_(None)))).values())


def ok_stats(h, campaign_id: int) -> int:
    from engine.core.counters import node_stats

    with h.session() as s:
        return node_stats(s, campaign_id)["t"]["entered"]


@pytest.mark.parametrize("frequency", ["once", "period"])
def test_four_concurrent_batches_of_the_same_customers_start_one_journey_each(harness, frequency):
    cid = _launch(harness, _flow(frequency))
    with harness.transaction() as s:  # the customers exist: the racers race on the rule only
        events.ingest(s, events.parse_batch({"events": _visits(CUSTOMERS, event="signup")}))
    batch = events.parse_batch({"events": _visits(CUSTOMERS)})

    def racer() -> int:
        with harness.transaction() as s:
            return events.ingest(s, batch).journeys_started

    answers = at_once(4, racer)
    assert sum(answers) == CUSTOMERS, f"the answers claim {answers}"
    assert _journeys_per_customer(harness, cid) == Counter({1: CUSTOMERS})
    assert ok_stats(harness, cid) == CUSTOMERS, "the counters count the journeys that exist"


def test_once_per_period_admits_again_after_the_period_even_under_races(harness):
    cid = _launch(harness, _flow("period"))
    for day in range(3):
        batch = events.parse_batch({"events": _visits(50)})

        def racer() -> int:
            with harness.transaction() as s:
                return events.ingest(s, batch).journeys_started  # noqa: B023 - all run within this iteration

        assert sum(at_once(4, racer)) == 50, f"day {day}"
        harness.clock.advance(timedelta(days=1, minutes=1))
    assert _journeys_per_customer(harness, cid) == Counter({3: 50})


def test_a_once_journey_is_unique_in_the_database_itself(harness):
    """The last word is the unique index: a second journey of a "once" campaign inserted
    past every check (as a racer that read before the first committed would) is not stored."""
    from engine.core.entry import enroll_entries
    from nodes.triggers import ONCE_KEY

    cid = _launch(harness, _flow("once"))
    with harness.transaction() as s:
        events.ingest(s, events.parse_batch({"events": _visits(1)}))
        version_id = campaigns.get(s, cid).version_id
        pid = s.scalar(select(Profile.id))
    now = harness.clock.now()
    with harness.transaction() as s:
        assert enroll_entries(s, cid, version_id, "t", [{"profile_id": pid, "entry_key": ONCE_KEY}], now) == 0
    assert _journeys_per_customer(harness, cid) == Counter({1: 1})


@pytest.mark.processes
@pytest.mark.chaos
@pytest.mark.parametrize("frequency", ["once", "period"])
def test_concurrent_batches_through_two_servers_start_one_journey_per_customer(
        harness, database_url, redis_url, tmp_path, frequency, chaos_report):
    """Two real `serve` processes on one database; the same 2,000 customers' events in four
    concurrent batch requests, two to each server."""
    customers = 2000
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_INSTANCE_DIR": str(tmp_path),
           "CC_QUEUE": harness.rt.settings.queue_name}
    key = api_key(env)
    ports = [free_port(), free_port()]
    servers = [subprocess.Popen([CLI, "serve", "--workers", "0", "--port", str(port)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            wait_for(lambda base=base: answering(base), what="the servers to answer")
        cid = api(bases[0], "/api/campaigns?launch=true", _flow(frequency), key)["id"]
        api(bases[0], "/api/events/batch", {"events": _visits(customers, event="signup")}, key)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda base: api(base, "/api/events/batch", {"events": _visits(customers)}, key),
                                    [bases[0], bases[1], bases[0], bases[1]]))
    finally:
        outputs = [stop(server) for server in servers]
    assert all("Traceback" not in out for out in outputs), outputs
    per_customer = _journeys_per_customer(harness, cid)
    chaos_report(f"concurrent '{frequency}' entries through 2 servers", expected=customers,
                 distinct=sum(per_customer.values()),
                 duplicated=sum((n - 1) * k for n, k in per_customer.items() if n > 1),
                 lost=customers - sum(per_customer.values()))
    assert sum(a["journeys_started"] for a in answers) == customers, [a["journeys_started"] for a in answers]
    assert per_customer == Counter({1: customers})
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Profile)) == customers
