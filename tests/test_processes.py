"""The real processes: `campaign-canvas serve` (embedded Redis + SQLite, in-process worker) and
`campaign-canvas worker` (RQ worker with RQ's own scheduler) on the wall clock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import campaigns, clock, db
from engine.models import Profile
from tests.support import add_profiles, doc, positions

CLI = str(Path(sys.executable).parent / "campaign-canvas")
# a 3-second wait: long enough to be scheduled in Redis, short enough for a test
SHORT_WAIT = doc([("all", "select_segment", {"source": "all"}), ("w", "wait", {"amount": 0.05, "unit": "minutes"}),
                  ("pts", "award_points", {"points": 3})],
                 [("all", "out", "w"), ("w", "out", "pts")], name="Short wait")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _api(base: str, path: str, body: dict | None = None, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out or ""


def test_serve_runs_a_campaign_with_embedded_redis_and_sqlite(tmp_path):
    port = _free_port()
    env = {**os.environ, "CC_INSTANCE_DIR": str(tmp_path), "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    output = ""
    try:
        _wait_for(lambda: _reachable(base), what="the server to answer")
        assert (tmp_path / "campaign-canvas.db").exists(), "the embedded SQLite database lives in the instance dir"
        with pytest.raises(urllib.error.HTTPError) as refused:
            _api(base, "/api/campaigns")
        assert refused.value.code == 401, "the API refuses a caller without a key"
        made = subprocess.run([CLI, "create-api-key", "process test", "--role", "marketer"], env=env,
                              capture_output=True, text=True, check=True)
        key = made.stdout.strip().splitlines()[-1]
        with db.transaction(db.session_factory(db.make_engine(f"sqlite:///{tmp_path / 'campaign-canvas.db'}"))) as s:
            add_profiles(s, 25)
        campaign = _api(base, "/api/campaigns", SHORT_WAIT, key)
        assert _api(base, f"/api/campaigns/{campaign['id']}/launch", {}, key)["entered"] == 25

        def finished():
            nodes = _api(base, f"/api/campaigns/{campaign['id']}/stats", key=key)["nodes"]
            return nodes.get("pts", {}).get("entered") == 25 and nodes

        nodes = _wait_for(finished, what="the wait to release everyone")
        assert nodes["w"]["left"] == {"out": 25} and nodes["w"]["waiting"] == 0
    except AssertionError as exc:
        output = _stop(server)
        raise AssertionError(f"{exc}\n--- server output ---\n{output}") from None
    finally:
        output = output or _stop(server)
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
        _wait_for(lambda: positions(harness, cid) == {("w", "active"): 40}, what="everyone to reach the wait")
        _wait_for(lambda: positions(harness, cid) == {("pts", "done"): 40}, what="the scheduler to release them")
        with harness.session() as s:
            assert set(s.scalars(select(Profile.points))) == {3}
    finally:
        clock.use(virtual)
        output = _stop(worker)
    assert "Traceback" not in output, output


def _reachable(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/login", timeout=5):
            return True
    except OSError:
        return False



def test_a_served_process_runs_segment_entry_and_single_send_triggers(engine, redis_url, database_url, tmp_path):
    """Through a real server on 127.0.0.1: a profile update that puts a customer into a
    segment starts their journey; a single send enrolls its audience once at launch."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_INSTANCE_DIR": str(tmp_path),
           "CC_QUEUE": f"triggers-{os.getpid()}-{_free_port()}", "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2"}
    made = subprocess.run([CLI, "create-api-key", "triggers", "--role", "marketer"], env=env,
                          capture_output=True, text=True, check=True)
    key = made.stdout.strip().splitlines()[-1]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    output = ""
    try:
        _wait_for(lambda: _reachable(base), what="the server to answer")
        people = [{"external_id": f"u{n}", "attributes": {"tier": "gold" if n < 2 else "silver"}} for n in range(5)]
        assert _api(base, "/api/profiles", {"profiles": people}, key)["created"] == 5
        gold = _api(base, "/api/segments", {"name": "Gold", "rules": {"match": "all", "rules": [
            {"field": "attributes.tier", "op": "eq", "value": "gold"}]}}, key)
        entering = doc([("t", "segment_entry", {"segment_id": gold["id"]}), ("pts", "award_points", {"points": 2})],
                       [("t", "out", "pts")], name="Welcome to gold")
        entry_campaign = _api(base, "/api/campaigns?launch=true", entering, key)
        assert entry_campaign["entered"] == 0, "today's gold members are the baseline"
        single = doc([("all", "select_segment", {"source": "all"}), ("pts", "award_points", {"points": 1})],
                     [("all", "out", "pts")], name="One-off")
        one_off = _api(base, "/api/campaigns?launch=true", single, key)
        assert one_off["entered"] == 5

        time.sleep(1.1)  # a later wall-clock second than the launch
        _api(base, "/api/profiles", {"profiles": [{"external_id": "u3", "attributes": {"tier": "gold"}}]}, key)

        def entered(campaign_id: int, count: int):
            nodes = _api(base, f"/api/campaigns/{campaign_id}/stats", key=key)["nodes"]
            return nodes.get("pts", {}).get("entered") == count and nodes
        _wait_for(lambda: entered(entry_campaign["id"], 1), what="the new gold member's journey")
        _wait_for(lambda: entered(one_off["id"], 5), what="the single send's journeys")
        with db.transaction(db.session_factory(engine)) as s:
            got = dict(s.execute(select(Profile.external_id, Profile.points)).all())
        assert got == {"u0": 1, "u1": 1, "u2": 1, "u3": 3, "u4": 1}
    except AssertionError as exc:
        output = _stop(server)
        raise AssertionError(f"{exc}\n--- server output ---\n{output[-5000:]}") from None
    finally:
        output = output or _stop(server)
    assert "Traceback" not in output, output
