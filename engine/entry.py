"""Enrolling customers: the only way journeys start.

A whole population enters with one `INSERT ... SELECT` (launching to a 1,000,000-profile
segment is one statement, not a million); a single customer (an event) with one insert.
Both count arrivals at the entry node and ask for a wakeup in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, literal, select
from sqlalchemy.orm import Session

from engine import wakeups
from engine.executor import ENTERED, add_counts
from engine.models import Enrollment

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
    count = max(inserted.rowcount, 0)
    _entered(session, campaign_id, version_id, node_id, count, now)
    return count


def enroll_profiles(session: Session, campaign_id: int, version_id: int, node_id: str, profile_ids: list[int],
                    now: datetime, context: dict[str, Any] | None = None) -> int:
    """Enroll these profiles (e.g. the customer an event came from), with the trigger's context."""
    if not profile_ids:
        return 0
    session.execute(insert(Enrollment), [
        {"campaign_id": campaign_id, "version_id": version_id, "profile_id": pid, "node_id": node_id,
         "state": "active", "due_at": now, "entered_at": now, "node_entered_at": now, "updated_at": now,
         "context": context}
        for pid in profile_ids
    ])
    _entered(session, campaign_id, version_id, node_id, len(profile_ids), now)
    return len(profile_ids)


def _entered(session: Session, campaign_id: int, version_id: int, node_id: str, count: int, now: datetime) -> None:
    if count:
        add_counts(session, campaign_id, version_id, {(node_id, ENTERED): count})
        wakeups.request(session, version_id, node_id, now)
