"""Enrolling customers: the only way journeys start.

A whole population enters with one `INSERT ... SELECT` (launching to a 1,000,000-profile
segment is one statement, not a million); a single customer (an event) with one insert.
Both count arrivals at the entry node and ask for a wakeup in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, literal, select
from sqlalchemy.orm import Session

from engine.core import wakeups
from engine.core.counters import CAMPAIGN_NODE
from engine.core.db import rowcount, upsert
from engine.core.executor import ENTERED, add_counts
from engine.core.models import Enrollment

_COLUMNS = ["campaign_id", "version_id", "profile_id", "node_id", "state", "due_at", "entered_at",
            "node_entered_at", "updated_at"]


def enroll_select(session: Session, campaign_id: int, version_id: int, node_id: str, profiles: Select[Any],
                  now: datetime) -> int:
    """Enroll every profile id `profiles` returns (a one-column select) at the entry node."""
    source = profiles.subquery()
    rows = select(
        literal(campaign_id), literal(version_id), source.c[0], literal(node_id), literal("active"),
        literal(now), literal(now), literal(now), literal(now),
    )
    inserted = session.execute(insert(Enrollment).from_select(_COLUMNS, rows),
                               execution_options={"preserve_rowcount": True})
    count = max(rowcount(inserted), 0)
    _entered(session, campaign_id, version_id, node_id, count, now)
    return count


def enroll_profiles(session: Session, campaign_id: int, version_id: int, node_id: str, profile_ids: list[int],
                    now: datetime, context: dict[str, Any] | None = None) -> int:
    """Enroll these profiles (e.g. the customer an event came from), with the trigger's context."""
    entries = [{"profile_id": pid, "entered_at": now, "context": context} for pid in profile_ids]
    return enroll_entries(session, campaign_id, version_id, node_id, entries, now)


def enroll_entries(session: Session, campaign_id: int, version_id: int, node_id: str,
                   entries: Sequence[Mapping[str, Any]], now: datetime) -> int:
    """Enroll one journey per entry, in one insert: `profile_id`, `entered_at` (an event
    batch: each customer at their own event's time) and `context`; an entry may also set
    `state`, `due_at` and `converted_at` (an event batch writes a journey that a later event
    of the same batch ended as `exited`), and `entry_key` (an event trigger's key: a journey
    whose key the customer already has in the campaign is not inserted, nor counted). All
    are due `now` otherwise. Returns how many journeys were inserted."""
    if not entries:
        return 0
    defaults = {"campaign_id": campaign_id, "version_id": version_id, "node_id": node_id, "state": "active",
                "due_at": now, "node_entered_at": now, "updated_at": now, "context": None, "converted_at": None,
                "entry_key": None}
    rows = [{**defaults, **entry} for entry in entries]
    plain = [row for row in rows if row["entry_key"] is None]
    if plain:
        # a Core executemany without RETURNING: the ORM's per-row bookkeeping, or RETURNING's
        # multi-row VALUES on PostgreSQL, cost more than the database does
        session.execute(insert(Enrollment.__table__), plain)
    count = len(plain) + _insert_keyed(session, [row for row in rows if row["entry_key"] is not None])
    _entered(session, campaign_id, version_id, node_id, count, now)
    return count


def _insert_keyed(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert journeys with an `entry_key`, skipping any whose (campaign, customer, key) a
    concurrent transaction took first (the partial unique index `uq_enrollments_entry_key`);
    returns how many were inserted, so the counters count journeys that exist."""
    if not rows:
        return 0
    table = Enrollment.__table__
    stmt = upsert(session, table).on_conflict_do_nothing().returning(table.c.id)
    return len(session.execute(stmt, rows).all())


def _entered(session: Session, campaign_id: int, version_id: int, node_id: str, count: int, now: datetime) -> None:
    if count:
        counts = {(node_id, ENTERED): count, (CAMPAIGN_NODE, "entered"): count}
        add_counts(session, campaign_id, version_id, counts, now)
        wakeups.request(session, version_id, node_id, now)
