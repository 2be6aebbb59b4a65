"""A batch: the customers a node processes at once, and the node's window on the transaction.

Nodes are written against arrays: `batch.profile_ids` goes into one SQL statement, never a
Python loop that queries per customer. Everything a node writes through `batch.session`
commits in the same transaction that moves the batch along its edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, Select, SQLColumnExpression, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engine.core.db import upsert
from engine.core.models import NodeState

#: keep IN lists well below SQLite's bound-parameter limit
IN_CHUNK = 10_000


def id_chunks(session: Session, column: SQLColumnExpression[Any], ids: Sequence[int]) -> Iterator[ColumnElement[bool]]:
    """`column IN ids` as conditions to run one statement each: on PostgreSQL a single
    `= ANY(array)` parameter (one bind instead of thousands: much less parsing and
    planning), elsewhere IN lists of at most IN_CHUNK."""
    if not ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        yield column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger)))
        return
    for start in range(0, len(ids), IN_CHUNK):
        yield column.in_(ids[start : start + IN_CHUNK])


@dataclass
class NodeContext:
    """What a node may know about where it runs."""

    session: Session
    now: datetime
    campaign_id: int
    version_id: int
    node_id: str
    document: Mapping[str, Any]
    account_tz: ZoneInfo


class Batch:
    """Parallel arrays of enrollments at one node; subsets share the node's context."""

    def __init__(
        self,
        ctx: NodeContext,
        enrollment_ids: Sequence[int],
        profile_ids: Sequence[int],
        node_entered_at: Sequence[datetime],
        *,
        _holds: list[tuple[list[int], list[datetime]]] | None = None,
    ):
        self.ctx = ctx
        self.enrollment_ids = list(enrollment_ids)
        self.profile_ids = list(profile_ids)
        self.node_entered_at = list(node_entered_at)
        self._holds = _holds if _holds is not None else []

    # -- shape ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.enrollment_ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self.profile_ids)

    def __repr__(self) -> str:
        return f"<Batch node={self.ctx.node_id} size={len(self)}>"

    @property
    def session(self) -> Session:
        return self.ctx.session

    @property
    def now(self) -> datetime:
        return self.ctx.now

    # -- subsets -------------------------------------------------------------------------
    def take(self, indexes: Iterable[int]) -> Batch:
        """The members at these positions, in that order."""
        idx = list(indexes)
        return Batch(
            self.ctx,
            [self.enrollment_ids[i] for i in idx],
            [self.profile_ids[i] for i in idx],
            [self.node_entered_at[i] for i in idx],
            _holds=self._holds,
        )

    def only(self, profile_ids: Iterable[int]) -> Batch:
        """The members whose profile is among `profile_ids`."""
        keep = profile_ids if isinstance(profile_ids, set | frozenset) else set(profile_ids)
        return self.take(i for i, p in enumerate(self.profile_ids) if p in keep)

    def without(self, other: Batch | Iterable[int]) -> Batch:
        """The members not in `other` (a batch, compared by enrollment, or profile ids)."""
        if isinstance(other, Batch):
            drop = set(other.enrollment_ids)
            return self.take(i for i, e in enumerate(self.enrollment_ids) if e not in drop)
        drop = set(other)
        return self.take(i for i, p in enumerate(self.profile_ids) if p not in drop)

    def empty(self) -> Batch:
        return self.take(())

    def chunks(self, size: int) -> Iterator[Batch]:
        for start in range(0, len(self), size):
            yield self.take(range(start, min(start + size, len(self))))

    # -- set work in SQL -----------------------------------------------------------------
    def matching(self, query: Select[Any], profile_column: SQLColumnExpression[Any]) -> Batch:
        """The members whose profile id `query` returns, `query` being restricted to this
        batch's profiles in SQL (chunked to stay within parameter limits)."""
        found: set[int] = set()
        for condition in id_chunks(self.session, profile_column, list(dict.fromkeys(self.profile_ids))):
            found.update(self.session.scalars(query.where(condition)))
        return self.only(found)

    # -- holding -------------------------------------------------------------------------
    def hold(self, subset: Batch, until: datetime | Sequence[datetime]) -> None:
        """Keep `subset` at this node until `until` (one time, or one per member); the node
        processes them again then. Used by delay nodes."""
        times = [until] * len(subset) if isinstance(until, datetime) else list(until)
        if len(times) != len(subset):
            raise ValueError("hold: one time per member, or a single time")
        self._holds.append((list(subset.enrollment_ids), times))

    @property
    def holds(self) -> list[tuple[list[int], list[datetime]]]:
        return self._holds

    # -- node memory ---------------------------------------------------------------------
    def state(self) -> NodeState:
        """This node's state row, locked for the rest of the transaction (so two workers
        running the same node take turns). Mutate `.data` by assigning a new dict."""
        session = self.session
        key = {"campaign_id": self.ctx.campaign_id, "node_id": self.ctx.node_id}
        session.execute(upsert(session, NodeState).values(**key, data={}, updated_at=self.now).on_conflict_do_nothing())
        row = session.scalars(
            select(NodeState).filter_by(**key).with_for_update().execution_options(populate_existing=True)
        ).one()
        return row
