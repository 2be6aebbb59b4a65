"""RQ workers that never spend a minute saying goodbye.

An RQ worker listens on a Redis pub/sub channel for operator commands (`rq shutdown`,
kill the running job) in a thread that waits up to 60 s for each message. When the worker
stops it joins that thread, and redis-py 8 joins it with no time limit: every worker's
stop, and every burst worker's run however short, took a whole minute. Long-lived workers
keep listening but wake every second, so a stop takes at most that; in-process burst
workers (the time machine's) take no commands at all and never listen.
"""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker, Worker

#: how long a worker's command listener waits for a message before it looks whether it
#: should stop: the longest a worker's shutdown waits for it
LISTEN_SECONDS = 1.0


class _PromptListener:
    """Subscribes exactly as RQ does (RQ 2 and 3 alike), with a short wait per message."""

    pubsub: Any
    pubsub_thread: Any
    connection: Any
    pubsub_channel_name: str

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})  # type: ignore[attr-defined]
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=LISTEN_SECONDS, daemon=True,
            exception_handler=self._pubsub_exception_handler)  # type: ignore[attr-defined]


class ForkingWorker(_PromptListener, Worker):
    """RQ's default worker (a forked child per job), with a prompt shutdown."""


class InProcessWorker(_PromptListener, SimpleWorker):
    """Runs jobs in its own process (SQLite's locks are per process), with a prompt shutdown."""


class BurstWorker(SimpleWorker):
    """An in-process worker for `work(burst=True)` runs that nobody sends commands to: it
    does not subscribe, so starting and stopping it costs a few Redis round trips."""

    def subscribe(self) -> None:
        self.pubsub_thread = None
