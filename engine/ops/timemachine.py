"""Drive the real RQ queue on a virtual clock.

Jobs are scheduled in Redis exactly as in production (`enqueue_at` with the due bucket's
time); instead of waiting for the wall clock, the time machine moves a virtual clock to the
next scheduled job, releases what is due into the queue and runs it with an in-process RQ
worker. Tests and benchmarks use it to run "wait 2 days" in seconds on a real Redis.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import ScheduledJobRegistry

from engine.core.clock import VirtualClock
from engine.core.workers import BurstWorker
from engine.ops.runtime import Runtime


class TimeMachine:
    def __init__(self, rt: Runtime, clock: VirtualClock):
        self.rt = rt
        self.clock = clock
        self.registry = ScheduledJobRegistry(queue=rt.queue)
        #: wake jobs run so far (each job a chunked batch, never a customer)
        self.jobs_run = 0
        #: (job function, its return value) of every job run so far, in order
        self.results: list[tuple[str | None, Any]] = []
        #: job function -> the longest one of its jobs took, in wall seconds
        self.longest: dict[str | None, float] = {}
        self._worker: _CountingWorker | None = None

    def next_scheduled(self) -> datetime | None:
        first = self.rt.redis.zrange(self.registry.key, 0, 0, withscores=True)
        return datetime.fromtimestamp(float(first[0][1]), UTC).replace(tzinfo=None) if first else None

    def run_due(self) -> int:
        """Release every job scheduled up to the virtual now and run the queue empty."""
        ran = 0
        while True:
            self._release()
            if self.rt.queue.count == 0:
                return ran
            worker = self._worker = self._worker or _CountingWorker([self.rt.queue], connection=self.rt.redis)
            worker.ran, worker.failed, worker.results, worker.longest = 0, [], self.results, self.longest
            worker.work(burst=True, logging_level=logging.getLevelName(logging.WARNING))
            ran += worker.ran
            self.jobs_run += worker.ran
            if worker.failed:
                raise RuntimeError(f"{len(worker.failed)} RQ job(s) failed: {', '.join(worker.failed)}")

    def advance_to(self, when: datetime) -> None:
        """Move the clock to `when`, stopping at every scheduled job time on the way."""
        self.run_due()
        while (due := self.next_scheduled()) is not None and due <= when:
            self.clock.set(due)
            self.run_due()
        self.clock.set(when)
        self.run_due()

    def advance(self, delta: timedelta) -> None:
        self.advance_to(self.clock.now() + delta)

    def run_until_idle(self, limit: timedelta = timedelta(days=400)) -> None:
        """Run every scheduled job, however far ahead, up to `limit` from now."""
        end = self.clock.now() + limit
        self.run_due()
        while (due := self.next_scheduled()) is not None and due <= end:
            self.clock.set(due)
            self.run_due()

    def _release(self) -> None:
        ts = int(self.clock.now().replace(tzinfo=UTC).timestamp())
        ids = self.registry.get_jobs_to_schedule(ts, chunk_size=10_000)
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=self.rt.redis), strict=True):
            self.registry.remove(job_id)
            if job is not None:
                self.rt.queue.enqueue_job(job)


class _CountingWorker(BurstWorker):
    """An in-process burst worker that remembers what it ran and what failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ran = 0
        self.failed: list[str] = []
        self.results: list[tuple[str | None, Any]] = []
        self.longest: dict[str | None, float] = {}

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.ran += 1
        began = time.perf_counter()
        super().execute_job(job, queue)
        took = time.perf_counter() - began
        self.longest[job.func_name] = max(self.longest.get(job.func_name, 0.0), took)
        if job.get_status(refresh=True) == JobStatus.FAILED:
            self.failed.append(job.id)
        else:
            self.results.append((job.func_name, job.return_value()))
