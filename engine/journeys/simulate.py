"""Simulation: run a campaign on a virtual clock in a throwaway database, sending nothing.

The same executor and node code run as in production; only the clock (virtual, jumping to
the next due time) and the wakeups (an in-memory heap instead of RQ) differ. Marketers use
it before launch; tests use it for exact counts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.core import clock, db
from engine.core.clock import VirtualClock
from engine.core.executor import Executor
from engine.core.models import Audience, Profile
from engine.core.wakeups import DISPATCH, SCHEDULE, LocalWakeups, bind
from engine.journeys import campaigns, schedule
from engine.journeys.events import record_event
from engine.messaging.channels import OutgoingMessage, Provider, SendResult
from engine.messaging.dispatcher import Dispatcher


@dataclass
class SimulationResult:
    campaign_id: int
    #: node id -> {"entered": n, "waiting": n, ports...}
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    started: datetime | None = None
    ended: datetime | None = None
    steps: int = 0
    #: what would have been sent: {"count": n, "sample": [first few, rendered]} (per node: the `sent` ports)
    messages: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "nodes": self.nodes, "steps": self.steps, "messages": self.messages,
                "started": self.started.isoformat() if self.started else None,
                "ended": self.ended.isoformat() if self.ended else None}


class RecordingChannel(Provider):
    """The simulation's only provider: accepts everything, sends nothing, remembers it."""

    kind, channel, label, max_batch = "simulation", "any", "Simulation", 1000

    def __init__(self) -> None:
        super().__init__({}, {})
        self.messages: list[OutgoingMessage] = []

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        self.messages.extend(messages)
        return [SendResult(m.outbox_id, True, provider_message_id=f"sim-{m.outbox_id}") for m in messages]

    def accepted(self, batch_key: str) -> set[int] | None:
        return set()

    def summary(self, sample: int = 5) -> dict[str, Any]:
        return {"count": len(self.messages),
                "sample": [{"to": m.to, "content": m.content} for m in self.messages[:sample]]}


class Simulation:
    """A campaign in a private SQLite database with a virtual clock.

    `profiles` are dicts of Profile fields; `events` are `{"at": "+2d" | ISO time, "event":
    name, "profile": index into profiles, "properties": {...}}` fired when the clock reaches
    them, so waits, A/B evaluations and event filters see them at the right moment.
    """

    def __init__(self, document: Mapping[str, Any], *, start: datetime, account_timezone: str = "UTC",
                 chunk_size: int = 5000, database_dir: Path | None = None, database_url: str | None = None):
        """`database_url`: run in that database (emptied and migrated by the caller, e.g. a
        test's PostgreSQL database) instead of a private SQLite file."""
        self._tmp = (tempfile.TemporaryDirectory(prefix="cc-sim-")
                     if database_dir is None and database_url is None else None)
        folder = Path(self._tmp.name) if self._tmp else database_dir
        if database_url:
            url = database_url
        else:
            assert folder is not None  # database_dir, or the temporary directory made above
            url = f"sqlite:///{folder / 'simulation.db'}"
        db.upgrade(url)
        self.engine = db.make_engine(url)
        self.sessions = db.session_factory(self.engine)
        self.wakeups = LocalWakeups()
        bind(self.sessions, self.wakeups, account_timezone=account_timezone)
        self.executor = Executor(self.sessions, chunk_size=chunk_size, account_timezone=account_timezone)
        self.clock = VirtualClock(start)
        self.channel = RecordingChannel()
        self.dispatcher = Dispatcher(self.sessions, lambda _s, _p, _c: self.channel)
        self.document = document
        self.start = clock.to_utc_naive(start)
        self._events: list[tuple[datetime, dict[str, Any]]] = []
        self.profile_ids: list[int] = []

    def add_profiles(self, profiles: list[dict[str, Any]]) -> list[int]:
        with db.transaction(self.sessions) as session:
            rows = [{"attributes": {}, "push_tokens": [], "created_at": self.start, "updated_at": self.start, **p}
                    for p in profiles]
            ids = list(session.scalars(insert(Profile).returning(Profile.id, sort_by_parameter_order=True), rows))
        self.profile_ids.extend(ids)
        return ids

    def add_events(self, events: list[dict[str, Any]]) -> None:
        for spec in events:
            at = spec.get("at", "+0m")
            when = self.start + clock.parse_duration(at) if at.startswith("+") else clock.parse_instant(at)
            self._events.append((when, spec))
        self._events.sort(key=lambda e: e[0])

    def run(self, until: timedelta = timedelta(days=365)) -> SimulationResult:
        previous = clock.use(self.clock)
        try:
            with db.transaction(self.sessions) as session:
                _stand_in_audiences(session, self.document)
                campaign = campaigns.create(session, self.document)
                campaigns.launch(session, campaign.id, self.clock.now())
            steps = self._drive(self.start + until)
            return self._result(campaign.id, steps)
        finally:
            clock.use(previous)

    def _drive(self, end: datetime) -> int:
        steps = 0
        while True:
            wake = self.wakeups.pop_next()
            next_event = self._events[0][0] if self._events else None
            if wake is None and next_event is None:
                return steps
            if next_event is not None and (wake is None or next_event <= wake[0]):
                if wake is not None:
                    self.wakeups.schedule(wake[1], wake[2], wake[0])
                if next_event > end:
                    return steps
                self.clock.set(next_event)
                self._fire_due_events()
                continue
            assert wake is not None  # no event is due before it, and one of the two is there
            due, version_id, node_id = wake
            if due > end:
                return steps
            self.clock.set(due)
            if (version_id, node_id) == DISPATCH:
                self.dispatcher.run()
            elif node_id == SCHEDULE:  # a scheduled send or a recurring schedule's run
                with db.transaction(self.sessions) as session:
                    schedule.run_due(session, due, campaign_id=version_id)
            else:
                self.executor.run(version_id, node_id)
            steps += 1

    def _fire_due_events(self) -> None:
        now = self.clock.now()
        with db.transaction(self.sessions) as session:
            while self._events and self._events[0][0] <= now:
                _, spec = self._events.pop(0)
                record_event(session, self.profile_ids[spec["profile"]], spec["event"],
                             spec.get("properties", {}), now)

    def _result(self, campaign_id: int, steps: int) -> SimulationResult:
        from engine.core.counters import node_stats

        with self.sessions() as session:
            nodes = node_stats(session, campaign_id, self.clock.now())
        return SimulationResult(campaign_id=campaign_id, nodes=nodes, started=self.start, ended=self.clock.now(),
                                steps=steps, messages=self.channel.summary())

    def close(self) -> None:
        self.engine.dispose()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _stand_in_audiences(session: Session, document: Mapping[str, Any]) -> None:
    """Audiences the campaign writes to exist, empty, in the throwaway database."""
    for node in document.get("nodes", []):
        audience_id = node.get("settings", {}).get("audience_id")
        if isinstance(audience_id, int) and session.get(Audience, audience_id) is None:
            session.add(Audience(id=audience_id, name=f"audience {audience_id} (simulated)"))
    session.flush()
