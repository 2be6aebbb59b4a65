"""Redis down, the API and the dispatcher still work: wakeups are safe to lose (the sweeper
asks for them again from the database), so a request whose transaction committed answers
as committed, never with a 500 that a client would retry into a duplicate."""

from __future__ import annotations

from datetime import timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import func, select

from engine.core.models import Enrollment
from engine.ops.runtime import Runtime
from tests.served import free_port
from tests.support import authed_client, doc, launch, ok, positions

EACH_TIME = doc([("t", "event_trigger", {"event": "visit"}), ("w", "wait", {"amount": 1, "unit": "hours"}),
                 ("pts", "award_points", {"points": 1})], [("t", "out", "w"), ("w", "out", "pts")],
                name="Each visit")


def test_an_event_accepted_while_redis_is_down_starts_its_journey_once_and_it_runs_when_redis_is_back(harness):
    from server import create_app

    cid = launch(harness, EACH_TIME)
    # a real client with no server behind it (and no retries, to keep the test short)
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    down = Runtime(harness.rt.settings, redis_conn=nowhere)
    app, _ = create_app(down, message_queue=False)
    client = authed_client(app, harness)
    try:
        answer = ok(client.post("/api/events", json={"event": "visit", "profile": {"external_id": "ann"}}), 201)
    finally:
        down.close()
    assert answer["journeys_started"] == 1, "the answer says what was committed"
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.campaign_id == cid)) == 1

    assert harness.machine.next_scheduled() is None, "no wakeup reached Redis"
    harness.clock.advance(timedelta(seconds=harness.rt.settings.bucket_seconds + 1))
    assert harness.rt.sweep()["woken"] == 1, "Redis is back: the sweeper asks again for what is overdue"
    harness.machine.run_due()
    assert positions(harness, cid) == {("w", "active"): 1}
    harness.machine.advance(timedelta(hours=1, minutes=1))
    assert positions(harness, cid) == {("pts", "done"): 1}
