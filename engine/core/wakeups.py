"""Waking the executor up at due times.

Positions in the database are the truth; a wakeup only says "look at (version, node) at
this time". So wakeups are cheap to repeat and safe to lose: one RQ job per (campaign
version, node, due-time bucket) with a deterministic id, and the sweeper re-creates any that
went missing. Wakeups are requested inside a transaction and sent only once it commits, so a
worker never wakes for rows it cannot see yet.
"""

from __future__ import annotations

import heapq
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from engine.core import clock

log = logging.getLogger(__name__)

_PENDING = "cc_wakeups_pending"
_TARGET = "cc_wakeups"


class Wakeups(Protocol):
    def schedule(self, version_id: int, node_id: str, due: datetime) -> None: ...

    def schedule_dispatch(self, due: datetime) -> None: ...

    def schedule_campaign(self, campaign_id: int, due: datetime) -> None:
        """Run the campaign's entry node by itself at `due` (a scheduled single send, the
        next run of a recurring schedule): see `engine.journeys.schedule.run_due`."""

    def schedule_segment_refresh(self, after: datetime) -> None:
        """Re-evaluate the segments "enters segment" triggers watch, at the first refresh
        time after `after`: see `engine.journeys.segments.refresh_watched`."""


#: the pending-wakeup key of "run the outbox dispatcher"
DISPATCH = (0, "@dispatch")
#: the node id of "run this campaign's schedule" keys: (campaign id, SCHEDULE)
SCHEDULE = "@schedule"
#: the pending-wakeup key of "refresh the watched segments"
SEGMENTS = (0, "@segments")
#: session.info key of the account time zone (schedules and dates without an offset use it)
ACCOUNT_TZ = "cc_account_timezone"


def request(session: Session, version_id: int, node_id: str, due: datetime) -> None:
    """Ask for a wakeup once this session's transaction commits."""
    session.info.setdefault(_PENDING, set()).add((version_id, node_id, due))


def request_dispatch(session: Session, due: datetime) -> None:
    """Ask for the outbox dispatcher to run at `due`, once this transaction commits."""
    session.info.setdefault(_PENDING, set()).add((*DISPATCH, due))


def request_campaign(session: Session, campaign_id: int, due: datetime) -> None:
    """Ask for the campaign's scheduled entry to run at `due`, once this transaction commits."""
    session.info.setdefault(_PENDING, set()).add((campaign_id, SCHEDULE, due))


def request_segment_refresh(session: Session, after: datetime) -> None:
    """Ask for the next segment refresh after `after`, once this transaction commits."""
    session.info.setdefault(_PENDING, set()).add((*SEGMENTS, after))


def account_timezone(session: Session) -> str:
    """The account time zone of the runtime (or simulation) this session belongs to."""
    return session.info.get(ACCOUNT_TZ) or "UTC"


def bind(sessions: sessionmaker[Session], wakeups: Wakeups, *, account_timezone: str = "UTC") -> None:
    """Make every session from `sessions` send its requested wakeups to `wakeups` on commit.
    Sessions also carry the account time zone: computing a schedule's next run needs it
    wherever that happens (a request, a job, the sweeper, a simulation)."""
    info = sessions.kw.setdefault("info", {})
    info[_TARGET] = wakeups
    info[ACCOUNT_TZ] = account_timezone

    @event.listens_for(sessions, "after_commit")
    def _send(session: Session) -> None:
        pending = session.info.pop(_PENDING, None)
        target = session.info.get(_TARGET)
        if pending and target is not None:
            try:
                for version_id, node_id, due in sorted(pending, key=lambda w: w[2]):
                    _send_one(target, version_id, node_id, due)
            except redis.RedisError as exc:
                # the work is committed: failing now would tell the caller otherwise (an API
                # client would retry into a duplicate, a dispatcher would die); the sweeper
                # asks again for every wakeup of what is due, from the database
                log.warning("Redis is unreachable (%s): %d wakeup(s) left to the sweeper", exc, len(pending))

    @event.listens_for(sessions, "after_rollback")
    def _drop(session: Session) -> None:
        session.info.pop(_PENDING, None)


def _send_one(target: Wakeups, key: int, node_id: str, due: datetime) -> None:
    if (key, node_id) == DISPATCH:
        target.schedule_dispatch(due)
    elif (key, node_id) == SEGMENTS:
        target.schedule_segment_refresh(due)
    elif node_id == SCHEDULE:
        target.schedule_campaign(key, due)
    else:
        target.schedule(key, node_id, due)


class LocalWakeups:
    """In-memory wakeups for simulations: a heap of due times on a virtual clock.

    A campaign's scheduled runs are entries `(due, campaign_id, SCHEDULE)`. Segment refreshes
    are not kept: a simulation's throwaway database has no segments to watch (and a chain of
    5-minute refreshes over a simulated year would be 100,000 steps of nothing)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []
        self._seen: set[tuple[datetime, int, str]] = set()

    def schedule(self, version_id: int, node_id: str, due: datetime) -> None:
        key = (due, version_id, node_id)
        if key not in self._seen:
            self._seen.add(key)
            heapq.heappush(self._heap, key)

    def schedule_dispatch(self, due: datetime) -> None:
        self.schedule(*DISPATCH, due)

    def schedule_campaign(self, campaign_id: int, due: datetime) -> None:
        self.schedule(campaign_id, SCHEDULE, due)

    def schedule_segment_refresh(self, after: datetime) -> None:
        return None

    def pop_next(self) -> tuple[datetime, int, str] | None:
        if not self._heap:
            return None
        item = heapq.heappop(self._heap)
        self._seen.discard(item)
        return item

    def __len__(self) -> int:
        return len(self._heap)


class RQWakeups:
    """Wakeups as RQ jobs: `enqueue_at` for later buckets, a plain enqueue when due now.
    Every job carries an explicit timeout (`job_timeout`, CC_JOB_TIMEOUT_SECONDS), well above
    the budget a job works within before it hands over (engine/core/budget.py)."""

    def __init__(self, queue: Queue, bucket_seconds: int = 60,
                 segment_refresh_seconds: int = 300, job_timeout: int = 180) -> None:
        self.queue = queue
        self.bucket_seconds = bucket_seconds
        self.segment_refresh_seconds = segment_refresh_seconds
        self.job_timeout = job_timeout

    def bucket_end(self, due: datetime, seconds: int | None = None) -> datetime:
        """Due times are rounded up to the end of their bucket: one job serves them all."""
        seconds = seconds or self.bucket_seconds
        ts = due.replace(tzinfo=UTC).timestamp()
        return datetime.fromtimestamp(math.ceil(ts / seconds) * seconds, UTC).replace(tzinfo=None)

    def schedule(self, version_id: int, node_id: str, due: datetime) -> None:
        self._enqueue_once(f"cc-wake-{version_id}-{node_id}", due, "engine.jobs.wake", version_id, node_id)

    def fan_out(self, version_id: int, node_id: str, helpers: int) -> None:
        """Ask `helpers` more workers to claim chunks of a node whose backlog is larger than a
        chunk: claims skip each other's rows, so they share the backlog instead of one job
        working through it alone. Deterministic ids per bucket: asking twice adds nobody."""
        now = clock.now()
        for k in range(1, helpers + 1):
            self._enqueue_once(f"cc-wake-{version_id}-{node_id}-h{k}", now, "engine.jobs.wake_helper",
                               version_id, node_id)

    def schedule_dispatch(self, due: datetime) -> None:
        """One dispatch job per bucket; the dispatcher drains everything due when it runs."""
        self._enqueue_once("cc-dispatch", due, "engine.jobs.dispatch")

    def schedule_campaign(self, campaign_id: int, due: datetime) -> None:
        """One job per campaign and run time, at that time to the second (a marketer's 09:00
        is 09:00, whatever the bucket size)."""
        self._enqueue_once(f"cc-schedule-{campaign_id}", due, "engine.jobs.run_schedule", campaign_id, bucket=1)

    def schedule_segment_refresh(self, after: datetime) -> None:
        """Refreshes fall on multiples of the refresh period (08:05, 08:10, ... for 5 minutes), so
        whoever asks (a launch, the previous refresh, the sweeper) asks for the same job."""
        at = self.bucket_end(after + timedelta(seconds=1), self.segment_refresh_seconds)
        self._enqueue_once("cc-segments", at, "engine.jobs.refresh_segments", bucket=1)

    def continue_segment_refresh(self, after_segment_id: int) -> None:
        """A refresh that ran out of budget: a fresh job refreshes the segments after this one."""
        self._enqueue_once(f"cc-segments-after-{after_segment_id}", clock.now(), "engine.jobs.refresh_segments",
                           after_segment_id)

    def schedule_sweep(self, after: timedelta) -> None:
        """The next sweep, `after` from now (at once for 0: a worker starting, or finding Redis
        emptied, sweeps without waiting for RQ's scheduler, whose lock a dead worker may hold
        for another minute)."""
        at = self.bucket_end(clock.now() + after)
        kwargs = {"job_id": f"cc-sweep-{int(at.replace(tzinfo=UTC).timestamp())}", "result_ttl": 600,
                  "job_timeout": self.job_timeout}
        if after <= timedelta(0):
            self.queue.enqueue("engine.jobs.sweep", **kwargs)
        else:
            self.queue.enqueue_at(at.replace(tzinfo=UTC), "engine.jobs.sweep", **kwargs)

    def _enqueue_once(self, prefix: str, due: datetime, func: str, *args: object, bucket: int | None = None) -> None:
        """Enqueue `func` for the bucket of `due` under a deterministic job id, unless a job
        with that id is already waiting (it will see the same rows when it runs). A job that
        is running may have passed its last look already (or is the one handing over): then
        its `-again` id is used, and `-again2` when that one runs too."""
        now = clock.now()
        at = self.bucket_end(max(due, now), bucket)
        base = f"{prefix}-{int(at.replace(tzinfo=UTC).timestamp())}"
        candidates = [base, f"{base}-again", f"{base}-again2"]
        statuses = [job.get_status(refresh=False) if job is not None else None
                    for job in Job.fetch_many(candidates, connection=self.queue.connection)]
        if any(status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED) for status in statuses):
            return
        job_id = next((c for c, status in zip(candidates, statuses, strict=True) if status != JobStatus.STARTED),
                      candidates[-1])
        kwargs = {"job_id": job_id, "result_ttl": 600, "failure_ttl": 7 * 86400, "job_timeout": self.job_timeout}
        if due > now:
            self.queue.enqueue_at(at.replace(tzinfo=UTC), func, *args, **kwargs)
        else:
            self.queue.enqueue(func, *args, **kwargs)
