"""The real processes: `campaign-canvas serve` (embedded Redis + SQLite, in-process worker) and
`campaign-canvas worker` (RQ worker with RQ's own scheduler) on the wall clock."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.core import clock, db
from engine.core.models import Profile
from engine.journeys import campaigns
from tests.conftest import flush_keeping_claim
from tests.served import CLI, answering, api, api_key, call, free_port, stop, wait_for
from tests.support import add_profiles, doc, positions

pytestmark = pytest.mark.processes

# a 3-second wait: long enough to be scheduled in Redis, short enough for a test
SHORT_WAIT = doc([("all", "select_segment", {"source": "all"}), ("w", "wait", {"amount": 0.05, "unit": "minutes"}),
                  ("pts", "award_points", {"points": 3})],
                 [("all", "out", "w"), ("w", "out", "pts")], name="Short wait")










def test_serve_runs_a_campaign_with_embedded_redis_and_sqlite(tmp_path):
    port = free_port()
    env = {**os.environ, "CC_INSTANCE_DIR": str(tmp_path), "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    output = ""
    try:
        wait_for(lambda: answering(base), what="the server to answer")
        assert (tmp_path / "campaign-canvas.db").exists(), "the embedded SQLite database lives in the instance dir"
        assert call(base, "/api/campaigns")[0] == 401, "the API refuses a caller without a key"
        made = subprocess.run([CLI, "create-api-key", "process test", "--role", "marketer"], env=env,
                              capture_output=True, text=True)
        assert made.returncode == 0, f"create-api-key failed beside a running server:\n{made.stderr[-3000:]}"
        key = made.stdout.strip().splitlines()[-1]
        with db.transaction(db.session_factory(db.make_engine(f"sqlite:///{tmp_path / 'campaign-canvas.db'}"))) as s:
            add_profiles(s, 25)
        campaign = api(base, "/api/campaigns", SHORT_WAIT, key)
        assert api(base, f"/api/campaigns/{campaign['id']}/launch", {}, key)["entered"] == 25

        def finished():
            nodes = api(base, f"/api/campaigns/{campaign['id']}/stats", key=key)["nodes"]
            return nodes.get("pts", {}).get("entered") == 25 and nodes

        nodes = wait_for(finished, what="the wait to release everyone")
        assert nodes["w"]["left"] == {"out": 25} and nodes["w"]["waiting"] == 0
    except AssertionError as exc:
        output = stop(server)
        raise AssertionError(f"{exc}\n--- server output ---\n{output}") from None
    finally:
        output = output or stop(server)
    assert "Traceback" not in output, output


def test_worker_process_releases_waits_with_rqs_scheduler(harness, redis_url, database_url):
    with harness.transaction() as s:
        add_profiles(s, 40)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "CC_QUEUE": harness.rt.settings.queue_name, "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2"}
    worker = subprocess.Popen([CLI, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    virtual = clock.use(clock.SystemClock())  # this test runs on the wall clock, like the worker
    try:
        with harness.transaction() as s:
            cid = campaigns.create(s, SHORT_WAIT).id
            campaigns.launch(s, cid, clock.now())
        wait_for(lambda: positions(harness, cid) == {("w", "active"): 40}, what="everyone to reach the wait")
        wait_for(lambda: positions(harness, cid) == {("pts", "done"): 40}, what="the scheduler to release them")
        with harness.session() as s:
            assert set(s.scalars(select(Profile.points))) == {3}
    finally:
        clock.use(virtual)
        output = stop(worker)
    assert "Traceback" not in output, output





def test_a_served_process_runs_segment_entry_and_single_send_triggers(engine, redis_url, database_url, tmp_path):
    """Through a real server on 127.0.0.1: a profile update that puts a customer into a
    segment starts their journey; a single send enrolls its audience once at launch."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_INSTANCE_DIR": str(tmp_path),
           "CC_QUEUE": f"triggers-{os.getpid()}-{free_port()}", "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2"}
    made = subprocess.run([CLI, "create-api-key", "triggers", "--role", "marketer"], env=env,
                          capture_output=True, text=True, check=True)
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    output = ""
    try:
        wait_for(lambda: answering(base), what="the server to answer")
        people = [{"external_id": f"u{n}", "attributes": {"tier": "gold" if n < 2 else "silver"}} for n in range(5)]
        assert api(base, "/api/profiles", {"profiles": people}, key)["created"] == 5
        gold = api(base, "/api/segments", {"name": "Gold", "rules": {"match": "all", "rules": [
            {"field": "attributes.tier", "op": "eq", "value": "gold"}]}}, key)
        entering = doc([("t", "segment_entry", {"segment_id": gold["id"]}), ("pts", "award_points", {"points": 2})],
                       [("t", "out", "pts")], name="Welcome to gold")
        entry_campaign = api(base, "/api/campaigns?launch=true", entering, key)
        assert entry_campaign["entered"] == 0, "today's gold members are the baseline"
        single = doc([("all", "select_segment", {"source": "all"}), ("pts", "award_points", {"points": 1})],
                     [("all", "out", "pts")], name="One-off")
        one_off = api(base, "/api/campaigns?launch=true", single, key)
        assert one_off["entered"] == 5

        time.sleep(1.1)  # a later wall-clock second than the launch
        api(base, "/api/profiles", {"profiles": [{"external_id": "u3", "attributes": {"tier": "gold"}}]}, key)

        def entered(campaign_id: int, count: int):
            nodes = api(base, f"/api/campaigns/{campaign_id}/stats", key=key)["nodes"]
            return nodes.get("pts", {}).get("entered") == count and nodes
        wait_for(lambda: entered(entry_campaign["id"], 1), what="the new gold member's journey")
        wait_for(lambda: entered(one_off["id"], 5), what="the single send's journeys")
        with db.transaction(db.session_factory(engine)) as s:
            got = dict(s.execute(select(Profile.external_id, Profile.points)).all())
        assert got == {"u0": 1, "u1": 1, "u2": 1, "u3": 3, "u4": 1}
    except AssertionError as exc:
        output = stop(server)
        raise AssertionError(f"{exc}\n--- server output ---\n{output[-5000:]}") from None
    finally:
        output = output or stop(server)
    assert "Traceback" not in output, output


def test_serve_with_several_workers_runs_them_and_takes_them_down_with_it(tmp_path):
    env = {**os.environ, "CC_INSTANCE_DIR": str(tmp_path), "CC_SERVE_WORKERS": "3"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    output = ""
    try:
        wait_for(lambda: answering(base), what="the server to answer")
        key = api_key(env, role="viewer")

        def workers() -> float:
            status, _ = call(base, "/api/auth/me", key=key)
            assert status == 200
            request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
            return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("cc_rq_workers{"))
        wait_for(lambda: workers() == 3, what="three RQ workers on the embedded Redis")
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
    finally:
        output = stop(server)
    assert "3 workers" in output
    leftover = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not leftover, f"worker processes outlived the server: {leftover}"
    assert "Traceback" not in output, output


def test_a_dispatcher_sweeps_too_so_lost_wakeups_come_back_without_rqs_scheduler(harness, redis_url, database_url):
    """Every RQ job is gone and no worker (so no RQ scheduler) runs: the dispatcher's own
    sweep asks for the overdue step again, as a job a worker picks up."""
    with harness.transaction() as s:
        add_profiles(s, 5)
        cid = campaigns.create(s, SHORT_WAIT).id
        campaigns.launch(s, cid, clock.SystemClock().now() - timedelta(minutes=10))
    flush_keeping_claim(harness.rt.redis)  # every RQ job is gone
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "CC_QUEUE": harness.rt.settings.queue_name, "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "1"}
    dispatcher = subprocess.Popen([CLI, "dispatcher", "--poll", "0.2"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: any(job_id.startswith("cc-wake-") for job_id in harness.rt.queue.job_ids),
                 what="the dispatcher's sweep to enqueue the overdue step")
    finally:
        output = stop(dispatcher)
    assert "Traceback" not in output, output
