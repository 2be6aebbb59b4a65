"""Our RQ workers: prompt to stop, back in RQ's registry after Redis lost its data, and
killed at a job's timeout in a way no `except Exception` can swallow.

Prompt: an RQ worker listens on a Redis pub/sub channel for operator commands (`rq
shutdown`, kill the running job) in a thread that waits up to 60 s for each message. When
the worker stops it joins that thread, and redis-py 8 joins it with no time limit: every
worker's stop, and every burst worker's run however short, took a whole minute. Long-lived
workers keep listening but wake every second, so a stop takes at most that; in-process burst
workers (the time machine's) take no commands at all and never listen.

Registered: RQ writes a worker into its registry (the sets `Worker.all` reads, which
`cc_rq_workers` and `campaign-canvas check` count) only when the worker is born; a heartbeat
only refreshes the worker's own key. After a FLUSHALL (or a failover to a replica that never
had the keys) a live worker running jobs counted 0, and the "fewer than 2 workers" alert
fired for nothing. Our long-lived workers look at each heartbeat (every 15 s when idle, after
every job) and write themselves back; the runtime also restarts its sweep chain then, which
re-creates every wakeup the flush lost.

Killed: RQ stops a job at its timeout by raising JobTimeoutException inside it, an
Exception: a provider call's `except Exception` (a provider bug: retry the batch) would take
it for "nothing was sent" and send the batch again. Ours raise JobOutOfTime, a BaseException
that only RQ's own handler (a bare except) and every transaction's rollback see.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rq import SimpleWorker, Worker, worker_registration
from rq.timeouts import BaseDeathPenalty, JobTimeoutException

#: how long a worker's command listener waits for a message before it looks whether it
#: should stop: the longest a worker's shutdown waits for it
LISTEN_SECONDS = 1.0


class JobOutOfTime(BaseException):
    """A job ran past its RQ timeout (CC_JOB_TIMEOUT_SECONDS) and is stopped where it is."""


class OutOfTimePenalty(BaseDeathPenalty):
    """RQ's SIGALRM death penalty raising JobOutOfTime for a job's timeout (and RQ's own
    exception for its other uses), and putting back the SIGALRM handler and alarm it found
    (pytest-timeout, for one, keeps its own there)."""

    def setup_death_penalty(self) -> None:
        self._previous = signal.signal(signal.SIGALRM, self._expired)
        self._began = time.monotonic()
        self._pending = signal.alarm(max(int(self._timeout), 1) if self._timeout and self._timeout > 0 else 0)

    def cancel_death_penalty(self) -> None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self._previous if self._previous is not None else signal.SIG_DFL)
        if self._pending:  # someone else's alarm: it goes off when it would have
            signal.alarm(max(self._pending - int(time.monotonic() - self._began), 1))

    def _expired(self, _signum: int, _frame: Any) -> None:
        kind = JobOutOfTime if issubclass(self._exception, JobTimeoutException) else self._exception
        raise kind(f"Task exceeded maximum timeout value ({self._timeout} seconds)")


if TYPE_CHECKING:  # the mixin's methods run on an RQ worker, whose methods they call
    _Worker = Worker
else:
    _Worker = object


class _LongLived(_Worker):
    """Subscribes exactly as RQ does (RQ 2 and 3 alike), with a short wait per message, and
    writes itself back into RQ's registry when Redis lost it."""

    pubsub: Any
    pubsub_thread: Any
    connection: Any
    pubsub_channel_name: str
    redis_workers_keys: str
    key: str
    worker_ttl: int
    #: called after the worker wrote itself back (Redis lost its data): the runtime restarts
    #: its sweep chain there
    on_reregistered: Callable[[], None] | None = None

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=LISTEN_SECONDS, daemon=True,
            exception_handler=self._pubsub_exception_handler)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if self.connection.sismember(self.redis_workers_keys, self.key):
            return
        with self.connection.pipeline() as again:
            again.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, again)
            again.expire(self.key, timeout or self.worker_ttl + 60)
            again.execute()
        self.log.warning("Worker %s: Redis had lost this worker's registration; registered again",
                         self.name)
        if self.on_reregistered is not None:
            self.on_reregistered()


class ForkingWorker(_LongLived, Worker):
    """RQ's default worker (a forked child per job), with a prompt shutdown."""

    death_penalty_class = OutOfTimePenalty


class InProcessWorker(_LongLived, SimpleWorker):
    """Runs jobs in its own process (SQLite's locks are per process), with a prompt shutdown."""

    death_penalty_class = OutOfTimePenalty


class BurstWorker(SimpleWorker):
    """An in-process worker for `work(burst=True)` runs that nobody sends commands to: it
    does not subscribe, so starting and stopping it costs a few Redis round trips."""

    death_penalty_class = OutOfTimePenalty

    def subscribe(self) -> None:
        self.pubsub_thread = None
