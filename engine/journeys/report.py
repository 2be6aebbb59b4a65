"""A campaign's report: what every node did, what happened to its messages, who converted.

Every figure comes from what the engine wrote in the transactions that moved customers: the
node/port counters (the canvas reads the same ones, so the two always agree), their hourly
copies (the time series sums to the totals), the outbox (message funnel), journey steps joined
to their journeys (conversions per A/B variant and control group), and the A/B node's state.
Nothing here writes.

Rates are fractions (0..1), None where the denominator is 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.core import registry
from engine.core.clock import iso
from engine.core.counters import CAMPAIGN_NODE, GOAL_NODE, campaign_totals, node_stats
from engine.core.errors import InvalidInput
from engine.core.graph import node_class
from engine.core.models import (
    CampaignVersion,
    CounterHour,
    Enrollment,
    JourneyStep,
    OutboxMessage,
)
from engine.core.registry import Variant
from engine.core.wording import naming
from engine.journeys import campaigns, summaries
from engine.journeys.events import CONVERTED

#: the delivery funnel of a message node, in order
FUNNEL = ("queued", "sent", "delivered", "opened", "clicked", "bounced", "failed", "uncertain", "unsubscribed")
#: rate name -> (numerator, denominator) in the funnel
RATES = {
    "sent": ("sent", "queued"),
    "delivered": ("delivered", "sent"),
    "opened": ("opened", "delivered"),
    "clicked": ("clicked", "delivered"),
    "click_to_open": ("clicked", "opened"),
    "bounced": ("bounced", "sent"),
    "failed": ("failed", "queued"),
    "unsubscribed": ("unsubscribed", "delivered"),
}
INTERVALS = ("hour", "day")
#: an automatic series is hourly up to this span of data, daily beyond
HOURLY_SPAN = timedelta(hours=72)
#: the most points one series answers (an hourly series over a quarter)
MAX_POINTS = 24 * 92
#: two-sided 95% normal quantile
Z95 = 1.959963984540054


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def build(session: Session, campaign_id: int, now: datetime, *, interval: str | None = None,
          tz: str = "UTC") -> dict[str, Any]:
    """The whole report of one campaign (see the module docstring)."""
    campaign = campaigns.get(session, campaign_id)
    documents = _documents(session, campaign_id, campaign.version_id)
    current = documents[0] if documents else {"nodes": []}
    stats = node_stats(session, campaign_id)
    with naming(summaries.names(session, current)):  # summaries name templates and segments
        nodes = _nodes(documents, stats)
    totals = campaign_totals(session, [campaign_id])[campaign_id]
    version = session.get(CampaignVersion, campaign.version_id) if campaign.version_id else None
    return {
        "campaign": {"id": campaign.id, "name": campaign.name, "status": campaign.status,
                     "version": version.number if version else None, "launched_at": iso(campaign.launched_at),
                     "finished_at": iso(campaign.finished_at)},
        "generated_at": iso(now),
        "goal": current.get("goal") or None,
        "totals": {**totals, "conversion_rate": rate(totals["converted"], totals["entered"]),
                   "waiting": sum(n["waiting"] for n in nodes)},
        "nodes": [{k: v for k, v in n.items() if not k.startswith("_")} for n in nodes],
        "messages": message_funnels(session, campaign_id, nodes),
        "ab_tests": ab_tests(session, campaign_id, nodes, current, now),
        "control_groups": control_groups(session, campaign_id, nodes),
        "series": series(session, campaign_id, interval=interval, tz=tz),
    }


# -- nodes --------------------------------------------------------------------------------
def _documents(session: Session, campaign_id: int, current_id: int | None) -> list[dict[str, Any]]:
    """Every version's document, the current one first, then newest to oldest."""
    versions = session.execute(select(CampaignVersion.id, CampaignVersion.document)
                               .where(CampaignVersion.campaign_id == campaign_id)
                               .order_by(CampaignVersion.number.desc())).all()
    return [d for i, d in versions if i == current_id] + [d for i, d in versions if i != current_id]


def _nodes(documents: Sequence[Mapping[str, Any]], stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The current document's nodes in its order, then nodes that only older versions had
    (`removed`) and still have customers or counts, each with its figures."""
    seen: dict[str, dict[str, Any]] = {}
    for n, document in enumerate(documents):
        for node in document.get("nodes", []):
            if node["id"] not in seen and (n == 0 or node["id"] in stats):
                seen[node["id"]] = {"id": node["id"], "type": node["type"], "label": node_label(node),
                                    "type_label": type_label(node),
                                    "channel": getattr(node_class(node), "channel", None), "removed": n > 0,
                                    "summary": _summary(node), "_class": node_class(node),
                                    "_settings": node.get("settings", {})}
    for node_id, info in seen.items():
        figures = stats.get(node_id, {"entered": 0, "waiting": 0, "left": {}})
        info.update(entered=figures["entered"], waiting=figures["waiting"], left=figures["left"])
    return list(seen.values())


def _summary(node: Mapping[str, Any]) -> str | None:
    """What the node's type says about a node with these settings, in the marketer's words."""
    cls = node_class(node)
    return cls.summary(node.get("settings", {})) if cls is not None else None


def type_label(node: Mapping[str, Any]) -> str:
    """The name the palette gives the node's type ("Send email"): the report speaks the
    marketer's words, never a type key. A type no longer installed (a removed plugin) has no
    palette name left; its key is spelled as words ("loyalty_points" -> "Loyalty points")."""
    cls = node_class(node)
    if cls is not None:
        return str(cls.label)
    words = node["type"].replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def node_label(node: Mapping[str, Any]) -> str:
    """What the report calls a node: its own label, else its type's palette name."""
    return str(node.get("label") or type_label(node))


def labels(session: Session, campaign_id: int) -> dict[str, tuple[str, str, str]]:
    """{node id: (label, type, type label)} over every version of the campaign, the current
    one winning: steps of a node since removed still say what it was."""
    campaign = campaigns.get(session, campaign_id)
    found: dict[str, tuple[str, str, str]] = {}
    for document in _documents(session, campaign_id, campaign.version_id):
        for node in document.get("nodes", []):
            found.setdefault(node["id"], (node_label(node), node["type"], type_label(node)))
    return found


# -- messages -----------------------------------------------------------------------------
def message_funnels(session: Session, campaign_id: int, nodes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per node that writes the outbox: its delivery funnel and rates. `failed` counts what
    never reached the customer's provider (refused, or dropped by it), `uncertain` what a
    dead dispatcher may or may not have sent."""
    o = OutboxMessage

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(o.node_id, func.count(), count(o.status == "sent"), func.count(o.delivered_at),
               func.count(o.opened_at), func.count(o.clicked_at), func.count(o.bounced_at),
               count((o.status == "failed") | (o.delivery_status == "dropped")), count(o.status == "uncertain"),
               func.count(o.unsubscribed_at))
        .where(o.campaign_id == campaign_id).group_by(o.node_id)
    ).all()
    funnels = {r[0]: dict(zip(FUNNEL, (int(v or 0) for v in r[1:]), strict=True)) for r in rows}
    result = []
    for node in nodes:
        if node["channel"] is None and node["id"] not in funnels:
            continue
        funnel = funnels.get(node["id"], dict.fromkeys(FUNNEL, 0))
        result.append({"node_id": node["id"], "label": node["label"], "type": node["type"],
                       "type_label": node["type_label"], "channel": node["channel"], "funnel": funnel,
                       "rates": {name: rate(funnel[a], funnel[b]) for name, (a, b) in RATES.items()}})
    return result


# -- conversions by path ------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """The journeys that left a node by a port, and how many of them converted after."""

    customers: int
    converted: int

    @property
    def rate(self) -> float | None:
        return rate(self.converted, self.customers)

    def to_dict(self) -> dict[str, Any]:
        return {"customers": self.customers, "converted": self.converted, "rate": self.rate}


def outcomes(session: Session, campaign_id: int, node_id: str) -> dict[str, Outcome]:
    """{port: Outcome} for one node, from its journey steps: a journey counts as converted
    by this path when it met the goal at or after leaving the node by it."""
    s, e = JourneyStep, Enrollment
    after = case((e.converted_at >= s.at, s.enrollment_id), else_=None)
    rows = session.execute(
        select(s.port, func.count(func.distinct(s.enrollment_id)), func.count(func.distinct(after)))
        .join(e, e.id == s.enrollment_id)
        .where(s.campaign_id == campaign_id, s.node_id == node_id)
        .group_by(s.port)
    ).all()
    return {port: Outcome(int(n), int(c)) for port, n, c in rows}


def ab_tests(session: Session, campaign_id: int, nodes: Sequence[Mapping[str, Any]],
             document: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Per experiment node (a node type with the `experiment` capability: the built-in A/B
    test or a plugin's): each variant's test group score as the node type reports it,
    everyone routed by it and their conversions, and the winner."""
    result = []
    for node in nodes:
        cls = node["_class"]
        if not registry.has(cls, "experiment"):
            continue
        test = cls.experiment(session, campaign_id, node["id"], node["_settings"], document, now)
        ids = [v.id for v in test.variants] or sorted(node["left"])
        by_id = {v.id: v for v in test.variants}
        by_port = outcomes(session, campaign_id, node["id"])
        result.append({
            "node_id": node["id"], "label": node["label"], "type_label": node["type_label"],
            "metric": test.metric, "winner": test.winner,
            "state": test.state, "decided_at": test.decided_at,
            "variants": [_variant(by_id.get(v, Variant(v, v)), node["left"].get(v, 0),
                                  by_port.get(v, Outcome(0, 0)), v == test.winner) for v in ids],
        })
    return result


def _variant(variant: Variant, entered: int, outcome: Outcome, winner: bool) -> dict[str, Any]:
    return {"id": variant.id, "name": variant.name, "test_size": variant.size, "test_hits": variant.hits,
            "test_rate": rate(variant.hits, variant.size), "entered": entered, "converted": outcome.converted,
            "conversion_rate": outcome.rate, "winner": winner}


def control_groups(session: Session, campaign_id: int, nodes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per holdout node (the `holdout` capability: the built-in control group or a
    plugin's): the held-out customers' conversion rate against the treated ones', and the
    uplift (treated minus control) with its 95% confidence interval."""
    result = []
    for node in nodes:
        cls = node["_class"]
        if not registry.has(cls, "holdout"):
            continue
        held_port, treated_port = cls.holdout_ports(node["_settings"])
        by_port = outcomes(session, campaign_id, node["id"])
        control, treated = by_port.get(held_port, Outcome(0, 0)), by_port.get(treated_port, Outcome(0, 0))
        result.append({"node_id": node["id"], "label": node["label"], "type_label": node["type_label"],
                       "control": control.to_dict(),
                       "treated": treated.to_dict(), "uplift": uplift(treated, control)})
    return result


def uplift(treated: Outcome, control: Outcome, z: float = Z95) -> dict[str, Any] | None:
    """Absolute uplift (difference of conversion rates) with Newcombe's hybrid score
    interval (his method 10), which stays inside [-1, 1] and behaves at rates near 0 or 1
    and with small groups, where the textbook Wald interval does not; relative uplift is
    the difference over the control rate."""
    if not treated.customers or not control.customers:
        return None
    p1, p2 = treated.converted / treated.customers, control.converted / control.customers
    l1, u1 = wilson(treated.converted, treated.customers, z)
    l2, u2 = wilson(control.converted, control.customers, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return {"absolute": diff, "relative": diff / p2 if p2 else None, "ci_low": low, "ci_high": high,
            "confidence": 0.95 if z == Z95 else None, "significant": low > 0 or high < 0}


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return centre - half, centre + half


# -- time series --------------------------------------------------------------------------
def series(session: Session, campaign_id: int, *, interval: str | None = None, tz: str = "UTC") -> dict[str, Any]:
    """Journeys entered and goals met per hour or day (in `tz`), from the hourly counters,
    gaps filled with zeros. Without an interval: hourly when the data spans up to 72 hours."""
    if interval is not None and interval not in INTERVALS:
        raise InvalidInput.field("interval", f"must be one of {', '.join(INTERVALS)}")
    zone = ZoneInfo(tz)
    wanted = {(CAMPAIGN_NODE, "entered"): "entered", (GOAL_NODE, CONVERTED): "converted"}
    rows = session.execute(
        select(CounterHour.node_id, CounterHour.port, CounterHour.hour, func.sum(CounterHour.count))
        .where(CounterHour.campaign_id == campaign_id, CounterHour.node_id.in_([CAMPAIGN_NODE, GOAL_NODE]))
        .group_by(CounterHour.node_id, CounterHour.port, CounterHour.hour)
    ).all()
    hours: dict[datetime, dict[str, int]] = defaultdict(lambda: {"entered": 0, "converted": 0})
    for node_id, port, hour, count in rows:
        if (node_id, port) in wanted:
            hours[hour][wanted[(node_id, port)]] += int(count)
    if interval is None:
        interval = "hour" if not hours or max(hours) - min(hours) <= HOURLY_SPAN else "day"
    buckets: dict[datetime, dict[str, int]] = defaultdict(lambda: {"entered": 0, "converted": 0})
    for hour, figures in hours.items():
        start = _bucket(hour.replace(tzinfo=UTC).astimezone(zone), interval)
        for key, value in figures.items():
            buckets[start][key] += value
    points = _filled(buckets, interval, zone)
    return {"interval": interval, "timezone": tz, "points": points}


def _bucket(local: datetime, interval: str) -> datetime:
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _filled(buckets: Mapping[datetime, Mapping[str, int]], interval: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    """Every bucket from the first to the last, in order (zeros where nothing happened).
    Steps are taken in UTC for hours and on the local calendar for days, so a day of 23 or
    25 hours (a DST change) is still one point."""
    if not buckets:
        return []
    first, last = min(buckets), max(buckets)
    if interval == "hour" and (last - first) / timedelta(hours=1) >= MAX_POINTS:
        raise InvalidInput.field("interval", f"an hourly series is limited to {MAX_POINTS} points; "
                                             "this campaign's data spans longer: use day")
    points, at = [], first
    while at <= last:
        figures = buckets.get(at, {"entered": 0, "converted": 0})
        points.append({"start": _iso_local(at), "entered": figures["entered"], "converted": figures["converted"]})
        if interval == "hour":
            at = (at.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
        else:
            day = at.date() + timedelta(days=1)
            at = datetime(day.year, day.month, day.day, tzinfo=zone)
    return points


def _iso_local(when: datetime) -> str:
    text = when.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def time_zone(name: str, field: str = "tz") -> str:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise InvalidInput.field(field, f"'{name}' is not a known IANA time zone") from None
    return name

