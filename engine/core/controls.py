"""Campaign controls (the document's `settings`): a send-rate limit, a frequency cap across
campaigns, and an exit rule.

- **Send rate**: at most N messages a minute from one campaign. Messages are never dropped:
  each new one is given the next free slot after the campaign's last one (a cursor kept in
  `node_states`, locked while a batch takes slots, so concurrent batches never share one), and
  the outbox sends it at that time. The dispatcher needs to know nothing about it.
- **Frequency cap**: a customer who already got N messages in their current day or week
  (their own time zone, else the account's) from non-transactional campaigns is skipped by
  the send node. Counted from the outbox (the ledger of every message, queued ones included,
  so one batch cannot overshoot); transactional campaigns are neither capped nor counted.
- **Exit rule**: a journey ends where it stands when the customer meets the goal (as the
  goal event is ingested, `engine/journeys/events.py`), or when they are not a member of a segment at
  one of its refreshes (every CC_SEGMENT_REFRESH_SECONDS, and at once for a customer whose
  profile changed, `engine/journeys/segments.py`). Either way it counts as `@exited` at its node.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Text, cast, select, update
from sqlalchemy.orm import Session

from engine.core.batch import id_chunks
from engine.core.clock import to_utc_naive
from engine.core.executor import EXITED, add_counts
from engine.core.models import (
    ACTIVE,
    Campaign,
    CampaignVersion,
    Enrollment,
    NodeState,
    OutboxMessage,
)
from engine.core.window import zone

#: node_states key of a campaign's send-rate cursor (not a node: node ids cannot start with @)
RATE_STATE = "@send_rate"


@dataclass(frozen=True)
class Controls:
    send_rate_per_minute: int | None = None
    cap_messages: int | None = None
    cap_per: str = "day"
    transactional: bool = False
    exit_when: str = "never"
    exit_segment_id: int | None = None


def controls_of(document: Mapping[str, Any]) -> Controls:
    """The controls a (valid) campaign document sets."""
    settings = document.get("settings") or {}
    cap = settings.get("frequency_cap") or {}
    exit_rule = settings.get("exit") or {}
    return Controls(
        send_rate_per_minute=settings.get("send_rate_per_minute"),
        cap_messages=cap.get("messages"), cap_per=cap.get("per", "day"),
        transactional=bool(settings.get("transactional")),
        exit_when=exit_rule.get("when", "never"), exit_segment_id=exit_rule.get("segment_id"),
    )


# -- send rate -------------------------------------------------------------------------------
def rate_slots(session: Session, campaign_id: int, rate_per_minute: int, due: Sequence[datetime]) -> list[datetime]:
    """The send time of each message (same order as `due`): no earlier than its own due time,
    and at most `rate_per_minute` a minute for the campaign, after every slot already taken."""
    state = session.scalars(select(NodeState).where(NodeState.campaign_id == campaign_id,
                                                    NodeState.node_id == RATE_STATE).with_for_update()).first()
    if state is None:
        state = NodeState(campaign_id=campaign_id, node_id=RATE_STATE, data={})
        session.add(state)
    step = timedelta(minutes=1) / rate_per_minute
    cursor = datetime.fromisoformat(state.data["next"]) if state.data.get("next") else None
    slots: list[datetime] = [due[0]] * len(due)
    for i in sorted(range(len(due)), key=lambda i: due[i]):
        slot = due[i] if cursor is None or cursor < due[i] else cursor
        slots[i] = slot
        cursor = slot + step
    state.data = {"next": cursor.isoformat() if cursor else None}
    return slots


# -- frequency cap ---------------------------------------------------------------------------
def over_cap(session: Session, controls: Controls, zones: Mapping[int, str | None], account_tz: ZoneInfo,
             now: datetime) -> set[int]:
    """The customers (of `zones`: profile id -> time zone) who already got `cap_messages`
    messages in their current day or week; empty when the campaign sets no cap or is
    transactional."""
    if controls.cap_messages is None or controls.transactional or not zones:
        return set()
    starts = {pid: period_start(now, zone(tz, account_tz), controls.cap_per) for pid, tz in zones.items()}
    earliest = min(starts.values())
    counts: Counter[int] = Counter()
    o = OutboxMessage
    for chosen in id_chunks(session, o.profile_id, sorted(zones)):
        rows = session.execute(select(o.profile_id, o.created_at).where(
            chosen, o.created_at >= earliest, o.counts_toward_cap.is_(True), o.status != "failed"))
        for pid, created in rows:
            if created >= starts[pid]:
                counts[pid] += 1
    return {pid for pid, n in counts.items() if n >= controls.cap_messages}


def period_start(now: datetime, tz: ZoneInfo, per: str) -> datetime:
    """The start (naive UTC) of the customer's current local day, or week (from Monday)."""
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    day = local.date() - timedelta(days=local.weekday() if per == "week" else 0)
    return to_utc_naive(datetime(day.year, day.month, day.day, tzinfo=tz))


# -- exit rule -------------------------------------------------------------------------------
def exit_journeys(session: Session, campaign_id: int, where: ColumnElement[bool], now: datetime) -> int:
    """End the campaign's active journeys that `where` picks, where they stand: each counts
    as `@exited` at its node (so a node's arrivals still add up), in the caller's
    transaction. Returns how many ended."""
    e = Enrollment
    rows = session.execute(select(e.id, e.version_id, e.node_id).where(e.campaign_id == campaign_id, ACTIVE, where)
                           .with_for_update()).all()
    by_version: dict[int, Counter[tuple[str, str]]] = defaultdict(Counter)
    for _eid, version_id, node_id in rows:
        by_version[version_id][(node_id, EXITED)] += 1
    for chosen in id_chunks(session, e.id, [r.id for r in rows]):
        session.execute(update(e).where(chosen).values(state="exited", due_at=None, updated_at=now),
                        execution_options={"synchronize_session": False})
    for version_id, counts in sorted(by_version.items()):
        add_counts(session, campaign_id, version_id, counts, now)
    return len(rows)


def segment_exits(session: Session) -> dict[int, list[int]]:
    """{segment id: [campaign id, ...]}: the active campaigns whose journeys end when the
    customer stops matching that segment."""
    rows = session.execute(
        select(Campaign.id, CampaignVersion.document)
        .join(CampaignVersion, CampaignVersion.id == Campaign.version_id)
        # a cheap text prefilter; the document decides
        .where(Campaign.status.in_(("active", "paused")), cast(CampaignVersion.document, Text).contains('"exit"'))
        .order_by(Campaign.id))
    found: dict[int, list[int]] = defaultdict(list)
    for campaign_id, document in rows:
        controls = controls_of(document)
        if controls.exit_when == "segment" and controls.exit_segment_id is not None:
            found[controls.exit_segment_id].append(campaign_id)
    return found
