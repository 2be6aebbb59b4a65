"""Per-node statistics, read from the counters the executor writes in its transactions
(so the canvas, reports and simulations always agree), plus waiting counts derived from
positions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.executor import ENTERED
from engine.models import Enrollment, NodeCounter


def node_stats(session: Session, campaign_id: int, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """{node id: {"entered": n, "waiting": n, "left": {port: n}}}, summed over versions."""
    stats: dict[str, dict[str, Any]] = {}

    def entry(node_id: str) -> dict[str, Any]:
        return stats.setdefault(node_id, {"entered": 0, "waiting": 0, "left": {}})

    counters = session.execute(
        select(NodeCounter.node_id, NodeCounter.port, func.sum(NodeCounter.count))
        .where(NodeCounter.campaign_id == campaign_id)
        .group_by(NodeCounter.node_id, NodeCounter.port)
    )
    for node_id, port, count in counters:
        if port == ENTERED:
            entry(node_id)["entered"] = int(count)
        else:
            entry(node_id)["left"][port] = int(count)
    waiting = session.execute(
        select(Enrollment.node_id, func.count())
        .where(Enrollment.campaign_id == campaign_id, Enrollment.state == "active")
        .group_by(Enrollment.node_id)
    )
    for node_id, count in waiting:
        entry(node_id)["waiting"] = int(count)
    return stats
