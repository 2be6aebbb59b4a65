"""Entry nodes that run by themselves at set times: a single send at its `send_at`, a
recurring schedule (cron or every N).

`Campaign.next_run_at` is the truth about when a campaign's entry next runs. An RQ job at
that time (one per campaign and run time, deterministic id) wakes `run_due`, and the sweeper
runs whatever is overdue, so a lost job loses no run. A campaign that missed several runs
(workers down) runs once, then schedules the first run after now: customers get one
message late rather than three at once.

Times people type are local to a time zone (the node's, else the account's) unless they
carry an offset or Z. Runs are computed in local wall-clock time and each converted to UTC
on its own, so 09:00 Europe/Paris stays 09:00 local across a DST change. A local time that
does not exist (the hour skipped in spring) runs at the offset before the change (02:30
becomes 03:30); one that happens twice (the autumn hour) runs once, the first time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from engine.core import wakeups
from engine.core.budget import Budget
from engine.core.calendar import zone
from engine.core.entry import enroll_select
from engine.core.errors import CampaignCanvasError, InvalidInput
from engine.core.graph import entry_node
from engine.core.models import Campaign, CampaignVersion
from engine.core.registry import NodeType


class ScheduledEntry(Protocol):
    """What an entry node that runs by itself provides (nodes/triggers.py)."""

    id: str
    #: the campaign's status between launch and the first run ("scheduled" or "active")
    status_until_first_run: str

    def scheduled(self) -> bool:
        """Whether these settings make the node run by itself (a single send needs a send_at)."""

    def launch_problem(self, now: datetime, account_tz: ZoneInfo) -> tuple[str, str] | None:
        """(setting, message) when launching now is refused, e.g. a send_at too close."""

    def next_run(self, after: datetime, account_tz: ZoneInfo, *, inclusive: bool = False) -> datetime | None:
        """The first run after `after` (or at it, when inclusive); None when none is left."""

    def run_audience(self, session: Session, campaign_id: int, now: datetime) -> Select[Any]:
        """The profile ids a run enrolls (a one-column select)."""


def account_zone(session: Session) -> ZoneInfo:
    return zone(wakeups.account_timezone(session))


# --------------------------------------------------------------------------- campaigns


def is_scheduled(entry: NodeType) -> bool:
    """Whether this entry node runs by itself at set times (rather than at launch or on events)."""
    scheduled = getattr(entry, "scheduled", None)
    return callable(scheduled) and bool(scheduled())


def start(session: Session, campaign: Campaign, document: Mapping[str, Any], entry: NodeType, now: datetime) -> int:
    """Launch a campaign whose entry runs by itself: refuse a launch that could not run as
    set (naming the node's setting), else set its first run, running it now if it is due."""
    node: Any = entry
    tz = account_zone(session)
    if problem := node.launch_problem(now, tz):
        index = next(i for i, n in enumerate(document["nodes"]) if n.get("id") == entry.id)
        raise InvalidInput.field(f"/nodes/{index}/settings/{problem[0]}", problem[1])
    first = node.next_run(now, tz, inclusive=True)
    campaign.status = node.status_until_first_run
    if campaign.status != "active":
        campaign.launched_at = None
    campaign.next_run_at = first
    if first is not None and first <= now:
        return _run(session, campaign, now, tz)
    if first is not None:
        wakeups.request_campaign(session, campaign.id, first)
    return 0


def reschedule(session: Session, campaign: Campaign, document: Mapping[str, Any], now: datetime) -> None:
    """An edited campaign that runs by itself follows its new timing from now on: a waiting
    single send moves to its new `send_at` (still at least an hour ahead), a recurring
    schedule's next run is recomputed. Other edits leave `next_run_at` alone."""
    if campaign.status not in ("active", "scheduled"):
        return
    node: Any = entry_node(document)
    if not is_scheduled(node):
        return  # e.g. a waiting single send edited to "send at launch": its due run starts it
    tz = account_zone(session)
    waiting = campaign.status == "scheduled"
    if waiting and (problem := node.launch_problem(now, tz)):
        index = next(i for i, n in enumerate(document["nodes"]) if n.get("id") == node.id)
        raise InvalidInput.field(f"/nodes/{index}/settings/{problem[0]}", problem[1])
    campaign.next_run_at = node.next_run(now, tz, inclusive=waiting)
    if campaign.next_run_at is not None:
        wakeups.request_campaign(session, campaign.id, campaign.next_run_at)


def run_due(session: Session, now: datetime, *, campaign_id: int | None = None, budget: Budget | None = None) -> int:
    """Run every campaign whose next run is due (or only `campaign_id`), while the budget
    lasts (at least one: the others stay due for the next sweep); returns how many journeys
    started. Rows are locked (skipping those another worker is running), so a job and the
    sweeper never run the same run twice."""
    budget = budget or Budget.unlimited()
    query = (
        select(Campaign)
        .where(Campaign.next_run_at <= now, Campaign.status.in_(("active", "scheduled")))
        .order_by(Campaign.id)
        .with_for_update(skip_locked=True)
    )
    if campaign_id is not None:
        query = query.where(Campaign.id == campaign_id)
    tz = account_zone(session)
    started = 0
    for n, campaign in enumerate(session.scalars(query).all()):
        if n and budget.spent():
            break
        try:
            with session.begin_nested():
                started += _run(session, campaign, now, tz)
        except CampaignCanvasError as exc:  # e.g. its segment was deleted: say so, stop retrying;
            # the run stays due, so resuming the fixed campaign runs it (the sweeper finds it)
            campaign.status = "suspended"
            campaign.status_reason = f"scheduled run failed: {exc.message}"
    return started


def _run(session: Session, campaign: Campaign, now: datetime, tz: ZoneInfo) -> int:
    version = session.get_one(CampaignVersion, campaign.version_id)
    entry: Any = entry_node(version.document)
    starts = campaign.status == "scheduled"
    if starts:
        campaign.status, campaign.launched_at = "active", now
    if not is_scheduled(entry):  # edited since: a waiting single send starts as it now says
        campaign.next_run_at = None
        audience = entry.launch_audience(session, now) if starts else None
        return enroll_select(session, campaign.id, version.id, entry.id, audience, now) if audience is not None else 0
    entered = enroll_select(session, campaign.id, version.id, entry.id,
                            entry.run_audience(session, campaign.id, now), now)
    campaign.next_run_at = entry.next_run(now, tz)
    if campaign.next_run_at is not None:
        wakeups.request_campaign(session, campaign.id, campaign.next_run_at)
    return entered


def admits_later(campaign: Campaign, entry: NodeType, now: datetime, tz: ZoneInfo) -> bool:
    """Whether the campaign may still admit customers by itself: a run is left, or its
    trigger is continuous and not closed (an "enters segment" trigger past its `until`)."""
    if campaign.next_run_at is not None:
        return True
    if not entry.continuous:
        return False
    closes_at = getattr(entry, "closes_at", None)
    closes = closes_at(tz) if callable(closes_at) else None
    return closes is None or closes > now
