"""Live updates across processes: Socket.IO clients on one server receive the statistics a
separate worker process produces and the status changes another server makes, through the
Redis message queue (engine/ops/live.py); the production gunicorn command, for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import pytest
import socketio

from engine.core.config import Settings
from engine.ops import live
from engine.ops.runtime import Runtime
from tests.served import CLI, answering, api, api_key, free_port, wait_for
from tests.support import add_profiles, doc, launch, stats

BIN = Path(sys.executable).parent
#: the documented production command (engine/web/wsgi.py), on a port chosen by the test
GUNICORN = [str(BIN / "gunicorn"), "--worker-class", "gthread", "--workers", "1", "--threads", "20",
            "engine.web.wsgi:app"]
SIGNUP = doc([("t", "event_trigger", {"event": "signup"}), ("pts", "award_points", {"points": 1})],
             [("t", "out", "pts")], name="Signup points")


class _Processes:
    """Started processes, stopped (and their output kept) at the end."""

    def __init__(self, env: dict[str, str]):
        self.env, self.started = env, []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started.append((name, process))
        return process

    def stop(self) -> dict[str, str]:
        for _name, process in self.started:
            process.terminate()
        outputs = {}
        for name, process in self.started:
            try:
                out, _ = process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            outputs[name] = out or ""
        return outputs

    @contextmanager
    def reported(self) -> Iterator[list[socketio.Client]]:
        """The test's body: a failure carries the processes' output; at the end the clients
        put in the yielded list disconnect, the processes stop, and none logged a traceback."""
        clients: list[socketio.Client] = []
        try:
            yield clients
        except BaseException as exc:  # noqa: BLE001 - any failure, with the processes' output
            for client in clients:
                client.disconnect()
            outputs = self.stop()
            raise AssertionError(f"{exc}\n" + "\n".join(f"--- {name} ---\n{out[-4000:]}"
                                                        for name, out in outputs.items())) from None
        for client in clients:
            client.disconnect()
        for name, out in self.stop().items():
            assert "Traceback" not in out, f"{name}:\n{out}"


def _listening_client(base: str, key: str, room: dict) -> tuple[socketio.Client, list[tuple[str, dict]]]:
    """A client in `room` (a `join` payload) recording every live event it receives."""
    received: list[tuple[str, dict]] = []
    client = socketio.Client(reconnection=False)
    for event in ("stats", "status", "totals"):
        client.on(event, lambda data, event=event: received.append((event, data)))
    client.connect(base, auth={"token": key}, transports=["websocket"], wait_timeout=10)
    client.call("join", room, timeout=10)  # acknowledged: in the room now
    return client, received


@pytest.mark.processes
def test_a_client_on_one_server_sees_what_a_worker_does_for_events_posted_to_another(
        database_url, redis_url, engine, tmp_path):
    """Server A: the documented gunicorn command. Server B: `serve --workers 0`. The journeys
    run in a `campaign-canvas worker`. Only A has the Socket.IO client."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_INSTANCE_DIR": str(tmp_path),
           "CC_QUEUE": f"live-{uuid.uuid4().hex[:8]}", "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2",
           "CC_CHUNK_SIZE": "10"}
    key = api_key(env)
    port_a, port_b = free_port(), free_port()
    a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    processes = _Processes(env)
    processes.start("gunicorn A", [*GUNICORN, "--bind", f"127.0.0.1:{port_a}"])
    processes.start("serve B", [CLI, "serve", "--workers", "0", "--port", str(port_b)])
    processes.start("worker", [CLI, "worker"])
    with processes.reported() as clients:
        wait_for(lambda: answering(a) and answering(b), what="both servers to answer")
        campaign = api(b, "/api/campaigns?launch=true", SIGNUP, key)
        client, received = _listening_client(a, key, {"campaign_id": campaign["id"]})
        clients.append(client)

        api(b, "/api/events/batch", {"events": [{"event": "signup", "profile": {"external_id": f"u{n}"}}
                                                 for n in range(50)]}, key)

        def final_stats():
            got = [data for event, data in received if event == "stats"]
            return got and got[-1]["nodes"].get("pts", {}).get("entered") == 50 and got[-1]
        last = wait_for(final_stats, what="stats on server A reaching 50 customers")
        assert last["campaign_id"] == campaign["id"] and last["entered"] == 50
        assert last["nodes"]["t"]["left"] == {"out": 50} and last["nodes"]["pts"]["waiting"] == 0
        assert last["nodes"] == api(b, f"/api/campaigns/{campaign['id']}/stats", key=key)["nodes"]

        api(b, f"/api/campaigns/{campaign['id']}/pause", {}, key)
        wait_for(lambda: any(event == "status" and data["status"] == "paused" for event, data in received),
                  what="the status change made on server B to reach the client on server A")


@pytest.mark.processes
def test_a_served_process_on_embedded_redis_refuses_clients_without_credentials(tmp_path):
    """`campaign-canvas serve` with nothing configured: the message queue is the embedded
    Redis through its unix socket. A client without a key is refused; one with a key gets
    the status its own launch produced, which went out through that queue and back."""
    env = {**os.environ, "CC_INSTANCE_DIR": str(tmp_path), "CC_QUEUE": f"live-{uuid.uuid4().hex[:8]}"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = _Processes(env)
    processes.start("serve", [CLI, "serve", "--workers", "0", "--port", str(port)])
    with processes.reported() as clients:
        wait_for(lambda: answering(base), what="the server to answer")
        for credentials in (None, {}, {"token": "not-a-key"}):
            stranger = socketio.Client(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                stranger.connect(base, auth=credentials, transports=["websocket"], wait_timeout=10)
            assert not stranger.connected
        key = api_key(env)
        campaign = api(base, "/api/campaigns", SIGNUP, key)
        client, received = _listening_client(base, key, {"campaign_id": campaign["id"]})
        clients.append(client)
        api(base, f"/api/campaigns/{campaign['id']}/launch", {}, key)
        wait_for(lambda: any(event == "status" and data["status"] == "active" for event, data in received),
                  what="the launch's status event through the embedded Redis")


def test_the_embedded_redis_is_a_message_queue_url_redismanager_opens(tmp_path):
    rt = Runtime(Settings(instance_dir=tmp_path, redis_url="", queue_name="embedded-live"))
    try:
        url = live.message_queue_url(rt)
        assert url.startswith("unix://") and url.endswith("?db=0")
        listener = rt.redis.pubsub(ignore_subscribe_messages=True)
        listener.subscribe(live.channel(rt))
        live.client_manager(rt, write_only=True).emit("stats", {"campaign_id": 1}, namespace="/", room="campaign:1")
        message = wait_for(lambda: listener.get_message(timeout=0.5), timeout=5, what="the published event")
        assert json.loads(message["data"])["event"] == "stats"
        listener.close()
    finally:
        rt.close()


def test_stats_are_throttled_and_the_last_event_carries_the_final_counts(harness):
    """Many chunks committed in quick succession: far fewer events than chunks, the first at
    once, and the trailing one (after the last commit) equal to the stored statistics."""
    sent: list[tuple[float, dict]] = []
    chunks: list[float] = []
    done = threading.Event()

    def emit(event: str, data: dict, to: str) -> None:
        if event == "totals":  # each stats event's companion for the campaigns list: tested below
            return
        assert event == "stats" and to == f"campaign:{data['campaign_id']}"
        sent.append((time.monotonic(), data))
        done.set()

    publisher = live.install(harness.rt, emit)
    harness.rt.executor.listeners.append(lambda *_: chunks.append(time.monotonic()))
    with harness.transaction() as s:
        add_profiles(s, 4000)
    document = doc([("all", "select_segment", {"source": "all"}), ("pts", "award_points", {"points": 1})],
                   [("all", "out", "pts")])
    campaign_id = launch(harness, document)  # chunks of 500: eight commits

    truth = stats(harness, campaign_id)
    assert truth["pts"]["entered"] == 4000 and len(chunks) >= 8
    wait_for(lambda: sent and sent[-1][1]["nodes"] == truth and not publisher._due, timeout=5,
              what="the trailing event")
    time.sleep(live.STATS_INTERVAL + 0.2)  # nothing more comes
    assert sent[-1][1]["nodes"] == truth and sent[-1][1]["entered"] == 4000
    gaps = [later - earlier for (earlier, _), (later, _) in pairwise(sent)]
    assert all(gap >= live.STATS_INTERVAL * 0.9 for gap in gaps), gaps  # however slow the machine

    # a burst of 200 changes: at most the first goes out on its own, the rest fold into one
    sent.clear()
    for _ in range(200):
        publisher.stats_changed(campaign_id)
    wait_for(lambda: sent and not publisher._due, timeout=5, what="the events of the burst")
    time.sleep(live.STATS_INTERVAL + 0.2)
    assert 1 <= len(sent) <= 2 and sent[-1][1]["nodes"] == truth


def test_the_campaigns_list_gets_every_status_change_once_and_the_totals_with_each_stats_event(harness):
    """The list page's room: `status` goes to the campaign's room and the list's in one
    emit (a client in both gets it once); every `stats` event has a `totals` companion."""
    sent: list[tuple[str, dict, object]] = []
    publisher = live.install(harness.rt, lambda event, data, to: sent.append((event, data, to)))
    with harness.transaction() as s:
        add_profiles(s, 30)
    document = doc([("all", "select_segment", {"source": "all"}), ("pts", "award_points", {"points": 1})],
                   [("all", "out", "pts")])
    campaign_id = launch(harness, document)
    wait_for(lambda: any(event == "stats" and data["entered"] == 30 for event, data, _to in sent)
             and not publisher._due, timeout=5, what="the trailing stats event")

    stats_events = [(data, to) for event, data, to in sent if event == "stats"]
    totals_events = [(data, to) for event, data, to in sent if event == "totals"]
    assert [to for _data, to in stats_events] == [live.room(campaign_id)] * len(stats_events)
    assert totals_events == [({"campaign_id": campaign_id, "entered": data["entered"], "converted": data["converted"],
                               "sent": data["sent"]}, live.CAMPAIGNS_ROOM) for data, _to in stats_events]

    sent.clear()
    publisher.status({"id": campaign_id, "status": "paused"})
    assert sent == [("status", {"id": campaign_id, "status": "paused"}, [live.room(campaign_id), "campaigns"])]


@pytest.mark.parametrize("payload, room", [
    ({"campaign_id": 7}, "campaign:7"),
    ({"campaigns": True}, "campaigns"),
    ({"campaigns": "yes"}, None),
    ({"campaigns": 1}, None),
    ({"campaign_id": True}, None),
    ({"campaign_id": "7"}, None),
    ([7], None),
    (None, None),
])
def test_join_and_leave_name_a_campaign_or_the_campaigns_list(payload, room):
    from engine.web.app import live_room

    assert live_room(payload) == room


@pytest.mark.processes
def test_a_client_on_the_campaigns_list_sees_status_changes_and_totals_until_it_leaves(
        database_url, redis_url, engine, tmp_path):
    """A real `serve` (its in-process worker runs the journeys): a client that joined
    `{"campaigns": true}` gets the launch's status and the totals as customers enter; after
    `leave` it gets nothing of that room any more."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_INSTANCE_DIR": str(tmp_path),
           "CC_QUEUE": f"live-{uuid.uuid4().hex[:8]}", "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2"}
    key = api_key(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = _Processes(env)
    processes.start("serve", [CLI, "serve", "--workers", "1", "--port", str(port)])
    with processes.reported() as clients:
        wait_for(lambda: answering(base), what="the server to answer")
        client, received = _listening_client(base, key, {"campaigns": True})
        clients.append(client)
        campaign = api(base, "/api/campaigns?launch=true", SIGNUP, key)
        other = api(base, "/api/campaigns?launch=true", {**SIGNUP, "name": "Other"}, key)
        wait_for(lambda: {data["id"] for event, data in received if event == "status"} == {campaign["id"], other["id"]},
                  what="both launches on the campaigns list")

        api(base, "/api/events/batch", {"events": [{"event": "signup", "profile": {"external_id": f"u{n}"}}
                                                    for n in range(20)]}, key)
        wait_for(lambda: {"campaign_id": campaign["id"], "entered": 20, "converted": 0, "sent": 0} in
                  [data for event, data in received if event == "totals"], what="the totals reaching 20")
        assert not [data for event, data in received if event == "stats"], "per node stats stay in campaign rooms"

        client.call("leave", {"campaigns": True}, timeout=10)
        client.call("join", {"campaign_id": other["id"]}, timeout=10)
        api(base, f"/api/campaigns/{campaign['id']}/pause", {}, key)
        api(base, f"/api/campaigns/{other['id']}/pause", {}, key)  # published after the first, so seen after it
        wait_for(lambda: any(event == "status" and data["id"] == other["id"] and data["status"] == "paused"
                             for event, data in received), what="the other campaign's pause in its own room")
        assert not any(event == "status" and data["id"] == campaign["id"] and data["status"] == "paused"
                       for event, data in received), "the list's events stop after leave"
