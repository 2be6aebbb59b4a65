"""Nodes that keep failing suspend their campaign.

A node whose `process` raises (or breaks its contract) rolls its chunk back: its customers
stay where they were, due, and the sweeper wakes them again a minute later. Without a bound
that repeats forever, the customers stuck and the campaign `active` with no reason. So each
failed run of a node is counted here, in the database (every worker sees the same streak),
a successful run of the node ends its streak, and the FAILURES_BEFORE_SUSPEND-th failure in a
row suspends the campaign with a `status_reason` naming the node (by its label) and the
error. Resuming the campaign starts the count afresh and runs its customers again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from engine.core.db import rowcount, upsert
from engine.core.models import Campaign, NodeFailure

#: failed runs in a row of one node that suspend its campaign
FAILURES_BEFORE_SUSPEND = 5
#: the longest error text kept (and shown in the reason)
ERROR_CHARS = 500


def record(session: Session, campaign_id: int, node_id: str, label: str, error: str, now: datetime) -> bool:
    """Count a failed run of the node; suspend the active campaign at the limit. Returns
    whether this failure suspended it."""
    error = error[:ERROR_CHARS]
    stmt = upsert(session, NodeFailure).values(campaign_id=campaign_id, node_id=node_id, failures=1, error=error,
                                               failed_at=now)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["campaign_id", "node_id"],
        set_={"failures": NodeFailure.failures + 1, "error": error, "failed_at": now}))
    failures = session.scalar(select(NodeFailure.failures).where(NodeFailure.campaign_id == campaign_id,
                                                                  NodeFailure.node_id == node_id))
    if failures is None or failures < FAILURES_BEFORE_SUSPEND:
        return False
    reason = (f"The node '{label}' failed {failures} times in a row: {error}. Its customers wait where they are; "
              "fix the cause, then resume the campaign.")
    suspended = rowcount(session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status == "active")
                                         .values(status="suspended", status_reason=reason),
                                         execution_options={"synchronize_session": False}))
    return bool(suspended)


def succeeded(session: Session, campaign_id: int, node_ids: Iterable[str]) -> None:
    """The nodes ran without failing: their streaks end (a no-op without one)."""
    session.execute(delete(NodeFailure).where(NodeFailure.campaign_id == campaign_id,
                                              NodeFailure.node_id.in_(sorted(node_ids))),
                    execution_options={"synchronize_session": False})


def forget(session: Session, campaign_id: int) -> None:
    """Every streak of the campaign ends (it is resumed: its nodes get a fresh count)."""
    session.execute(delete(NodeFailure).where(NodeFailure.campaign_id == campaign_id),
                    execution_options={"synchronize_session": False})


def failing(session: Session) -> int:
    """How many nodes are failing now (their last run failed), suspended campaigns' included."""
    return session.scalar(select(func.count()).select_from(NodeFailure)) or 0
