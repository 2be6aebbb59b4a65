"""Per-node statistics, read from the counters the executor writes in its transactions
(so the canvas, reports and simulations always agree), plus waiting counts derived from
positions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.executor import ENTERED
from engine.core.models import Enrollment, NodeCounter


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
        if node_id.startswith("@"):  # campaign-wide counters (see campaign_totals)
            continue
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


#: campaign-wide counters live beside the node counters under these pseudo node ids
CAMPAIGN_NODE, GOAL_NODE = "@campaign", "@goal"
#: the port a send node routes a customer by once their message went out
SENT = "sent"


def campaign_totals(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """{campaign id: {"entered", "converted", "sent"}} from the counters (one query for a
    page). `sent` adds up every node's `sent` port: the send nodes route a customer by it
    once the provider took their message."""
    if not campaign_ids:
        return {}
    rows = session.execute(
        select(NodeCounter.campaign_id, NodeCounter.node_id, NodeCounter.port, func.sum(NodeCounter.count))
        .where(NodeCounter.campaign_id.in_(campaign_ids),
               NodeCounter.node_id.in_([CAMPAIGN_NODE, GOAL_NODE]) | (NodeCounter.port == SENT))
        .group_by(NodeCounter.campaign_id, NodeCounter.node_id, NodeCounter.port)
    )
    totals = {cid: {"entered": 0, "converted": 0, "sent": 0} for cid in campaign_ids}
    for campaign_id, node_id, port, count in rows:
        if node_id == CAMPAIGN_NODE:
            totals[campaign_id]["entered"] += int(count)
        elif node_id == GOAL_NODE:
            totals[campaign_id]["converted"] += int(count)
        elif port == SENT:
            totals[campaign_id]["sent"] += int(count)
    return totals
