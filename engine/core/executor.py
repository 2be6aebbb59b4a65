"""The executor: moves batches of enrollments through a campaign graph.

One call claims up to `chunk_size` due enrollments at one node, runs them through every
node they reach without waiting (a cascade, in flow order so branches merge first), and
writes where each one ends up, the per node/port counters and whatever the nodes wrote
(audience rows, outbox rows, ...) in a single transaction. A crash anywhere rolls all of it
back; the positions are still due, and the next wakeup or the sweeper runs them again.

Claiming is an atomic `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)
RETURNING`: on PostgreSQL concurrent workers take disjoint rows; on SQLite the statement
takes the database's single write lock for the transaction.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, insert, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.core import clock as clocks
from engine.core import node_failures, wakeups
from engine.core.batch import Batch, NodeContext, id_chunks
from engine.core.budget import Budget
from engine.core.db import upsert
from engine.core.graph import CampaignGraph, GraphCache, label
from engine.core.models import (
    ACTIVE,
    Campaign,
    CampaignVersion,
    CounterHour,
    Enrollment,
    JourneyStep,
    NodeCounter,
)

log = logging.getLogger(__name__)

ENTERED = "@entered"
#: the port a journey leaves its node by when a stop event ends it
EXITED = "@exited"

StatsListener = Callable[[int, int, dict[tuple[str, str], int]], None]


class NodeFailed(RuntimeError):
    """A node's process() broke its contract or raised (or its type is not installed); the
    whole chunk rolls back, and the failure is counted (engine/core/node_failures.py)."""

    def __init__(self, node_id: str, label: str, reason: str):
        super().__init__(f"node {node_id!r} ({label}) failed: {reason}")
        self.node_id, self.label, self.reason = node_id, label, reason


@dataclass
class _Members:
    enrollment_ids: list[int] = field(default_factory=list)
    profile_ids: list[int] = field(default_factory=list)
    node_entered_at: list[datetime] = field(default_factory=list)

    def extend(self, eids: Iterable[int], pids: Iterable[int], entered: Iterable[datetime]) -> None:
        self.enrollment_ids.extend(eids)
        self.profile_ids.extend(pids)
        self.node_entered_at.extend(entered)


@dataclass
class RunResult:
    processed: int = 0
    chunks: int = 0


class Executor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        chunk_size: int = 5000,
        account_timezone: str = "UTC",
        budget_seconds: float = 60.0,
    ):
        self.sessions = sessions
        self.chunk_size = chunk_size
        #: how long one `run` call goes on claiming chunks (CC_JOB_BUDGET_SECONDS)
        self.budget_seconds = budget_seconds
        self.account_tz = ZoneInfo(account_timezone)
        self.graphs = GraphCache()  # per executor: version ids are only unique per database
        self.listeners: list[StatsListener] = []

    # -- public --------------------------------------------------------------------------
    def run(self, version_id: int, node_id: str, budget: Budget | None = None,
            on_backlog: Callable[[], None] | None = None) -> RunResult:
        """Process what is due at (version, node) now, chunk by chunk: at least one chunk,
        then more while `budget` (by default one of `budget_seconds`) lasts; whatever is still
        due then is handed to a fresh wakeup, so no call runs longer than its budget and a
        chunk. 1M or 100M customers differ only in the number of calls. `on_backlog` is
        called once if the first chunk was full (more is due than one chunk)."""
        budget = budget or Budget(self.budget_seconds)
        result = RunResult()
        while True:
            claimed = self.run_chunk(version_id, node_id)
            result.processed += claimed
            result.chunks += bool(claimed)
            if claimed < self.chunk_size:
                return result
            if result.chunks == 1 and on_backlog is not None:
                on_backlog()
            if budget.spent():
                self.hand_over(version_id, node_id)
                return result

    def hand_over(self, version_id: int, node_id: str) -> None:
        """More is due at (version, node) than this job may do: a fresh wakeup goes on."""
        with self.sessions() as session, session.begin():
            wakeups.request(session, version_id, node_id, clocks.now())

    def run_chunk(self, version_id: int, node_id: str) -> int:
        """Claim and process one chunk in one transaction; returns how many were claimed.
        A node that fails rolls the chunk back, is counted (its campaign is suspended after
        a few failures in a row: engine/core/node_failures.py), and NodeFailed goes on to the caller."""
        now = clocks.now()
        campaign_id = None
        try:
            with self.sessions() as session, session.begin():
                row = session.execute(
                    select(Campaign.id, Campaign.status)
                    .join(CampaignVersion, CampaignVersion.campaign_id == Campaign.id)
                    .where(CampaignVersion.id == version_id)
                ).first()
                if row is None or row.status != "active":
                    return 0  # paused or stopped: positions stay where they are
                campaign_id = row.id
                claimed = self._claim(session, version_id, node_id, now)
                if not claimed.enrollment_ids:
                    return 0
                graph = self._graph(session, version_id, node_id)
                cascade = _Cascade(self, session, graph, row.id, version_id, now)
                counts = cascade.run(node_id, claimed)
        except NodeFailed as failure:
            self._count_failure(campaign_id, failure, now)
            raise
        for listener in self.listeners:
            listener(row.id, version_id, counts)
        return len(claimed.enrollment_ids)

    def _graph(self, session: Session, version_id: int, node_id: str) -> CampaignGraph:
        """The version's graph; NodeFailed when a node's type is not installed (any more)."""
        try:
            return self.graphs.get(version_id, lambda: session.get_one(CampaignVersion, version_id).document)
        except KeyError as exc:
            document = session.get_one(CampaignVersion, version_id).document
            spec = next((n for n in document["nodes"] if n["id"] == node_id), {"id": node_id, "type": node_id})
            raise NodeFailed(node_id, label(spec), str(exc.args[0] if exc.args else exc)) from exc

    def _count_failure(self, campaign_id: int | None, failure: NodeFailed, now: datetime) -> None:
        log.warning("campaign %s: %s", campaign_id, failure)
        if campaign_id is None:
            return
        with self.sessions() as session, session.begin():
            if node_failures.record(session, campaign_id, failure.node_id, failure.label, failure.reason, now):
                log.error("campaign %s suspended: node %r failed %d times in a row", campaign_id, failure.node_id,
                          node_failures.FAILURES_BEFORE_SUSPEND)

    # -- claiming ------------------------------------------------------------------------
    def _claim(self, session: Session, version_id: int, node_id: str, now: datetime) -> _Members:
        columns = (Enrollment.id, Enrollment.profile_id, Enrollment.node_entered_at)
        due = (
            select(*columns)
            .where(
                Enrollment.version_id == version_id,
                Enrollment.node_id == node_id,
                ACTIVE,
                Enrollment.due_at <= now,
            )
            .order_by(Enrollment.due_at)
            .limit(self.chunk_size)
            .with_for_update(skip_locked=True)
        )
        if session.get_bind().dialect.name == "postgresql":
            rows = session.execute(due).all()  # the row locks, held to commit, are the claim
        else:
            # SQLite has no row locks: a write takes the database's write lock, so the rows
            # read here cannot be claimed by anyone else before this transaction ends
            rows = session.execute(
                update(Enrollment)
                .where(Enrollment.id.in_(due.with_only_columns(Enrollment.id).scalar_subquery()))
                .values(updated_at=now)
                .returning(*columns),
                execution_options={"synchronize_session": False},
            ).all()
        members = _Members()
        members.extend((r[0] for r in rows), (r[1] for r in rows), (r[2] for r in rows))
        return members


class _Cascade:
    """One chunk's trip through the graph inside one transaction."""

    def __init__(self, executor: Executor, session: Session, graph: CampaignGraph, campaign_id: int,
                 version_id: int, now: datetime):
        self.ex = executor
        self.session = session
        self.graph = graph
        self.campaign_id = campaign_id
        self.version_id = version_id
        self.now = now
        self.counts: Counter[tuple[str, str]] = Counter()
        #: (node, state, due_at, node_entered_at) -> enrollment ids
        self.final: dict[tuple[str, str, datetime | None, datetime], list[int]] = defaultdict(list)
        self.pending: dict[str, _Members] = {}
        self.queue: list[tuple[int, str]] = []
        self.visited: set[str] = set()
        #: (node, port) -> the enrollments that left the node by the port (journey steps)
        self.steps: dict[tuple[str, str], list[int]] = defaultdict(list)

    def run(self, start: str, claimed: _Members) -> dict[tuple[str, str], int]:
        self._arrive(start, claimed, count=False)
        while self.queue:
            _, node_id = heapq.heappop(self.queue)
            members = self.pending.pop(node_id)
            if node_id in self.visited:  # came round a cycle within this cascade: park it
                self._park(node_id, members, self.now)
                continue
            self.visited.add(node_id)
            self._process(node_id, members)
        self._write()
        return dict(self.counts)

    def _arrive(self, node_id: str, members: _Members, *, count: bool = True) -> None:
        if count:
            self.counts[(node_id, ENTERED)] += len(members.enrollment_ids)
        if node_id not in self.pending:
            self.pending[node_id] = _Members()
            heapq.heappush(self.queue, (self.graph.order[node_id], node_id))
        self.pending[node_id].extend(members.enrollment_ids, members.profile_ids, members.node_entered_at)

    def _park(self, node_id: str, members: _Members, due: datetime) -> None:
        for eid, entered in zip(members.enrollment_ids, members.node_entered_at, strict=True):
            self.final[(node_id, "active", due, entered)].append(eid)
        wakeups.request(self.session, self.version_id, node_id, due)

    def _process(self, node_id: str, members: _Members) -> None:
        node = self.graph.nodes[node_id]
        ctx = NodeContext(
            session=self.session, now=self.now, campaign_id=self.campaign_id, version_id=self.version_id,
            node_id=node_id, document=self.graph.document, account_tz=self.ex.account_tz,
        )
        batch = Batch(ctx, members.enrollment_ids, members.profile_ids, members.node_entered_at)
        try:
            routed = node.process(batch)
        except Exception as exc:
            raise self._failed(node_id, f"{type(exc).__name__}: {exc}") from exc
        ports = set(node.ports_for(node.settings))
        placed: set[int] = set()
        for port, subset in routed.items():
            if port not in ports:
                raise self._failed(node_id, f"it routed customers to the port {port!r}, which it does not have")
            self._check_unplaced(node_id, placed, subset.enrollment_ids)
            self.counts[(node_id, port)] += len(subset)
            self.steps[(node_id, port)].extend(subset.enrollment_ids)
            self._follow(node_id, port, subset)
        entered_at = dict(zip(members.enrollment_ids, members.node_entered_at, strict=True))
        for eids, times in batch.holds:
            self._check_unplaced(node_id, placed, eids)
            for eid, due in zip(eids, times, strict=True):
                self.final[(node_id, "active", due, entered_at[eid])].append(eid)
            for due in set(times):
                wakeups.request(self.session, self.version_id, node_id, due)
        for eid in members.enrollment_ids:
            if eid not in placed:  # routed nowhere: the journey ends here
                self.final[(node_id, "done", None, entered_at[eid])].append(eid)

    def _check_unplaced(self, node_id: str, placed: set[int], eids: list[int]) -> None:
        before = len(placed)
        placed.update(eids)
        if len(placed) != before + len(eids):
            raise self._failed(node_id, "it sent a customer out by two ports (or held and routed one)")

    def _failed(self, node_id: str, reason: str) -> NodeFailed:
        spec = next(n for n in self.graph.document["nodes"] if n["id"] == node_id)
        return NodeFailed(node_id, label(spec), reason)

    def _follow(self, node_id: str, port: str, subset: Batch) -> None:
        targets = self.graph.targets_of(node_id, port)
        if not targets:
            for eid, entered in zip(subset.enrollment_ids, subset.node_entered_at, strict=True):
                self.final[(node_id, "done", None, entered)].append(eid)
            return
        arrivals = [self.now] * len(subset)
        self._arrive(targets[0], _Members(subset.enrollment_ids, subset.profile_ids, arrivals))
        for target in targets[1:]:  # parallel paths: each further edge gets a copy of the journey
            forked = self._fork(subset)
            self._arrive(target, _Members(forked, subset.profile_ids, arrivals))

    def _fork(self, subset: Batch) -> list[int]:
        by_id: dict[int, Any] = {}
        for chosen in id_chunks(self.session, Enrollment.id, subset.enrollment_ids):
            parents = select(Enrollment.id, Enrollment.entered_at, Enrollment.context).where(chosen)
            by_id.update((r.id, r) for r in self.session.execute(parents))
        rows = [
            {
                "campaign_id": self.campaign_id, "version_id": self.version_id, "profile_id": pid,
                "parent_id": eid, "node_id": "", "state": "active", "due_at": None,
                "entered_at": by_id[eid].entered_at, "node_entered_at": self.now, "updated_at": self.now,
                "context": by_id[eid].context,
            }
            for eid, pid in zip(subset.enrollment_ids, subset.profile_ids, strict=True)
        ]
        result = self.session.execute(
            insert(Enrollment).returning(Enrollment.id, sort_by_parameter_order=True), rows
        )
        return [r[0] for r in result]

    def _write(self) -> None:
        for (node_id, state, due, entered), eids in self.final.items():
            values: dict[str, Any] = {"node_id": node_id, "state": state, "due_at": due,
                                      "node_entered_at": entered, "updated_at": self.now}
            for chosen in id_chunks(self.session, Enrollment.id, eids):
                self.session.execute(update(Enrollment).where(chosen).values(**values),
                                     execution_options={"synchronize_session": False})
        self._write_steps()
        add_counts(self.session, self.campaign_id, self.version_id, self.counts, self.now)
        node_failures.succeeded(self.session, self.campaign_id, self.visited)

    def _write_steps(self) -> None:
        """One INSERT ... SELECT per (node, port) from the enrollments themselves: the
        database copies the rows, no Python dict or bound value per customer."""
        columns = ["campaign_id", "enrollment_id", "profile_id", "node_id", "port", "at"]
        at = literal(self.now, DateTime())
        for (node_id, port), eids in self.steps.items():
            for chosen in id_chunks(self.session, Enrollment.id, eids):
                rows = select(literal(self.campaign_id), Enrollment.id, Enrollment.profile_id, literal(node_id),
                              literal(port), at).where(chosen)
                self.session.execute(insert(JourneyStep).from_select(columns, rows))


def add_counts(session: Session, campaign_id: int, version_id: int, counts: dict[tuple[str, str], int],
               now: datetime) -> None:
    """Add to the node/port counters, and to their hour at `now`, in the caller's
    transaction (sorted, so concurrent writers lock rows in the same order and cannot
    deadlock)."""
    rows = [
        {"version_id": version_id, "node_id": node, "port": port, "campaign_id": campaign_id, "count": n}
        for (node, port), n in sorted(counts.items())
        if n
    ]
    if not rows:
        return
    stmt = upsert(session, NodeCounter)
    stmt = stmt.on_conflict_do_update(
        index_elements=["version_id", "node_id", "port"], set_={"count": NodeCounter.count + stmt.excluded.count}
    )
    session.execute(stmt, rows)
    hour = now.replace(minute=0, second=0, microsecond=0)
    hourly = upsert(session, CounterHour)
    hourly = hourly.on_conflict_do_update(
        index_elements=["campaign_id", "node_id", "port", "hour"],
        set_={"count": CounterHour.count + hourly.excluded.count},
    )
    session.execute(hourly, [{"campaign_id": campaign_id, "node_id": r["node_id"], "port": r["port"], "hour": hour,
                              "count": r["count"]} for r in rows])
