"""Segment membership: who matches a segment now, and since when; and the "customer enters
segment" trigger (an entry node with the `segment_watch` capability, e.g. the built-in
segment entry) that enrolls newcomers.

`segment_members` holds who matched at the last evaluation, each with `since` (when they
started matching). A refresh brings it up to date with two set statements (insert the
newly matching with since=now, delete those no longer matching), then enrolls, for each
active campaign whose entry is a segment_entry on that segment, the members who came in
after the campaign launched (or every member, with include_current) and never entered it:
one `INSERT ... SELECT ... WHERE NOT EXISTS` per campaign. A customer enters a campaign once,
ever: leaving the segment and coming back does not enter them again.

Refreshes run every CC_SEGMENT_REFRESH_SECONDS (an RQ job with a deterministic id, kept
alive by the sweeper) for the segments such campaigns watch, and at once for the customers
a profile change touches (`profiles_changed`). A launch refreshes the segment in its own
transaction first, so the members of the day are the baseline that does not enter.

Locks, so that two refreshes never both see a customer as new and enroll them twice: a
whole refresh holds the segment's row exclusively; a refresh of some customers holds it
shared (profile updates touching other customers run side by side) and holds those
customers' rows (a profile update already holds them: it changed them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Text,
    cast,
    delete,
    exists,
    false,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from engine.core import registry, wakeups
from engine.core.batch import id_chunks
from engine.core.budget import Budget
from engine.core.controls import controls_of, exit_journeys, segment_exits
from engine.core.db import upsert
from engine.core.entry import enroll_select
from engine.core.errors import CampaignCanvasError, InvalidInput, InvalidState
from engine.core.graph import entry_node
from engine.core.models import (
    Campaign,
    CampaignVersion,
    Enrollment,
    Profile,
    Segment,
    SegmentMember,
)
from engine.core.registry import NodeType
from engine.core.rules import compile_rules
from engine.journeys import schedule

log = logging.getLogger(__name__)

#: what an entry node says it is when segment newcomers start its journeys
CAPABILITY = "segment_watch"


@dataclass(frozen=True)
class Watcher:
    """An active campaign whose entry watches `segment_id` (a segment entry), still open."""

    campaign_id: int
    version_id: int
    launched_at: datetime
    entry: NodeType

    @property
    def segment_id(self) -> int:
        watched = self.entry.watched_segment(self.entry.settings)
        assert watched is not None  # a segment entry (registry: the segment_entry capability's hook)
        return int(watched)


def watchers(session: Session, now: datetime, segment_id: int | None = None) -> list[Watcher]:
    """The campaigns that enroll segment newcomers now (on `segment_id`, or on any)."""
    rows = session.execute(
        select(Campaign.id, Campaign.version_id, Campaign.launched_at, CampaignVersion.document)
        .join(CampaignVersion, CampaignVersion.id == Campaign.version_id)
        # a cheap text prefilter (the type names of segment entries); the entry node decides
        .where(Campaign.status == "active",
               or_(false(), *[cast(CampaignVersion.document, Text).contains(f'"{name}"', autoescape=True)
                              for name in registry.type_names(CAPABILITY)]))
        .order_by(Campaign.id)
    )
    tz = schedule.account_zone(session)
    found = []
    for campaign_id, version_id, launched_at, document in rows:
        entry = entry_node(document)
        watched = entry.watched_segment(entry.settings) if registry.has(type(entry), CAPABILITY) else None
        if watched is None or (segment_id is not None and watched != segment_id):
            continue
        closes = entry.closes_at(tz)
        if closes is None or closes > now:
            found.append(Watcher(campaign_id, version_id, launched_at, entry))
    return found


def refresh(session: Session, segment_id: int, now: datetime, profile_ids: Sequence[int] | None = None
            ) -> dict[int, int]:
    """Bring the segment's members up to date (only for `profile_ids` when given), enroll
    the newcomers of the campaigns watching it, and end the journeys of those who left it in
    campaigns whose exit rule names it. Returns {campaign id: journeys started}."""
    return _refresh(session, segment_id, now, profile_ids, watchers(session, now, segment_id),
                    segment_exits(session).get(segment_id, []))


def _refresh(session: Session, segment_id: int, now: datetime, profile_ids: Sequence[int] | None,
             watching: list[Watcher], exiting: Sequence[int] = ()) -> dict[int, int]:
    whole = profile_ids is None
    segment = session.scalars(select(Segment).where(Segment.id == segment_id)
                              .with_for_update(read=not whole)).first()
    if segment is None:
        raise InvalidState(f"segment {segment_id} does not exist")
    matches = compile_rules(segment.rules, session, now)
    for members_in, profiles_in in _restrictions(session, profile_ids):
        if profiles_in is not None:
            session.execute(select(Profile.id).where(profiles_in).order_by(Profile.id).with_for_update())
        _drop_leavers(session, segment_id, matches, members_in)
        _add_joiners(session, segment_id, matches, profiles_in, now)
    if whole:
        segment.evaluated_at = now
    for campaign_id in exiting:
        _exit_leavers(session, campaign_id, segment_id, now, profile_ids)
    return {w.campaign_id: _enroll_newcomers(session, w, now, profile_ids)
            for w in watching if w.segment_id == segment_id}


def _exit_leavers(session: Session, campaign_id: int, segment_id: int, now: datetime,
                  profile_ids: Sequence[int] | None) -> int:
    """The campaign's journeys of customers who are not (or no longer) members end here."""
    member = select(SegmentMember.profile_id).where(SegmentMember.segment_id == segment_id,
                                                    SegmentMember.profile_id == Enrollment.profile_id)
    if profile_ids is None:
        return exit_journeys(session, campaign_id, ~exists(member), now)
    return sum(exit_journeys(session, campaign_id, ~exists(member) & chosen, now)
               for chosen in id_chunks(session, Enrollment.profile_id, sorted(set(profile_ids))))


def _restrictions(session: Session, profile_ids: Sequence[int] | None
                  ) -> list[tuple[ColumnElement[bool] | None, ColumnElement[bool] | None]]:
    """(condition on members, condition on profiles) per chunk of `profile_ids`; one pair of
    no condition for a whole refresh."""
    if profile_ids is None:
        return [(None, None)]
    ids = sorted(set(profile_ids))
    return list(zip(id_chunks(session, SegmentMember.profile_id, ids), id_chunks(session, Profile.id, ids),
                    strict=True))


def _drop_leavers(session: Session, segment_id: int, matches: ColumnElement[bool],
                  restrict: ColumnElement[bool] | None) -> None:
    still = select(Profile.id).where(Profile.id == SegmentMember.profile_id, matches)
    statement = delete(SegmentMember).where(SegmentMember.segment_id == segment_id, ~exists(still))
    if restrict is not None:
        statement = statement.where(restrict)
    session.execute(statement, execution_options={"synchronize_session": False})


def _add_joiners(session: Session, segment_id: int, matches: ColumnElement[bool],
                 restrict: ColumnElement[bool] | None, now: datetime) -> None:
    known = select(SegmentMember.profile_id).where(SegmentMember.segment_id == segment_id,
                                                   SegmentMember.profile_id == Profile.id)
    joiners = select(literal(segment_id), Profile.id, literal(now)).where(matches, ~exists(known))
    if restrict is not None:
        joiners = joiners.where(restrict)
    statement = upsert(session, SegmentMember).from_select(["segment_id", "profile_id", "since"], joiners)
    session.execute(statement.on_conflict_do_nothing())


def _enroll_newcomers(session: Session, watcher: Watcher, now: datetime, profile_ids: Sequence[int] | None) -> int:
    """One INSERT ... SELECT: the members who never entered this campaign and came in after
    it launched (or all of them, with include_current)."""
    entered = select(Enrollment.id).where(Enrollment.campaign_id == watcher.campaign_id,
                                          Enrollment.profile_id == SegmentMember.profile_id)
    newcomers = select(SegmentMember.profile_id).where(SegmentMember.segment_id == watcher.segment_id,
                                                       ~exists(entered))
    if not watcher.entry.includes_current(watcher.entry.settings):
        newcomers = newcomers.where(SegmentMember.since > watcher.launched_at)
    if profile_ids is None:
        return enroll_select(session, watcher.campaign_id, watcher.version_id, watcher.entry.id, newcomers, now)
    return sum(enroll_select(session, watcher.campaign_id, watcher.version_id, watcher.entry.id,
                             newcomers.where(restrict), now)
               for restrict in id_chunks(session, SegmentMember.profile_id, sorted(set(profile_ids))))


def launched(session: Session, campaign: Campaign, document: Mapping[str, Any], entry: NodeType,
             now: datetime) -> int:
    """At launch of a segment_entry campaign (already active, launched now): refresh its
    segment, so today's members are the baseline (entering now only with include_current),
    and keep refreshes coming (also for a segment its exit rule names). Returns how many
    entered this campaign. Other entries: 0."""
    _watch_exit_segment(session, document, now)
    watched = entry.watched_segment(entry.settings) if registry.has(type(entry), CAPABILITY) else None
    if watched is None:
        return 0
    tz = schedule.account_zone(session)
    index = next(i for i, n in enumerate(document["nodes"]) if n.get("id") == entry.id)
    closes = entry.closes_at(tz)
    if closes is not None and closes <= now:
        raise InvalidInput.field(f"/nodes/{index}/settings/until", "is in the past: nobody could enter")
    if session.get(Segment, watched) is None:
        raise InvalidState(f"segment {watched} does not exist",
                           [{"node_id": entry.id, "pointer": f"/nodes/{index}/settings/segment_id"}])
    started = refresh(session, watched, now)
    wakeups.request_segment_refresh(session, now)
    return started.get(campaign.id, 0)


def _watch_exit_segment(session: Session, document: Mapping[str, Any], now: datetime) -> None:
    """A campaign whose journeys end when customers leave a segment: the segment must exist,
    and refreshes keep coming while the campaign runs."""
    controls = controls_of(document)
    if controls.exit_when != "segment" or controls.exit_segment_id is None:
        return
    if session.get(Segment, controls.exit_segment_id) is None:
        raise InvalidState(f"segment {controls.exit_segment_id} does not exist",
                           [{"pointer": "/settings/exit/segment_id"}])
    wakeups.request_segment_refresh(session, now)


def profiles_changed(session: Session, profile_ids: list[int], now: datetime) -> int:
    """Re-evaluate the segments (and the "entered segment" triggers) for these customers,
    in the caller's transaction. Returns how many journeys it started."""
    if not profile_ids:
        return 0
    watching = watchers(session, now)
    exits = segment_exits(session)
    started = 0
    for segment_id in sorted({w.segment_id for w in watching} | set(exits)):  # in id order: no lock cycles
        try:
            found = _refresh(session, segment_id, now, profile_ids, watching, exits.get(segment_id, []))
            started += sum(found.values())
        except CampaignCanvasError as exc:  # raised before any write: a broken segment must not
            log.warning("segment %s not refreshed: %s", segment_id, exc.message)  # block profile updates
    return started


@dataclass(frozen=True)
class Refreshed:
    """What a refresh run did: {segment id: journeys started}, and the last segment it
    refreshed when its budget ran out with segments left (None: it went through all)."""

    started: dict[int, int]
    left_after: int | None = None


def refresh_watched(sessions: Any, now: datetime, *, after: int = 0, budget: Budget | None = None) -> Refreshed:
    """Refresh every segment an active segment_entry campaign (or an exit rule) watches, with
    an id above `after`, in id order, each in a transaction of its own (one broken segment
    does not hold back the others), while the budget lasts (at least one). Having gone
    through all, asks for the next refresh while any campaign still watches."""
    from engine.core import db

    budget = budget or Budget.unlimited()
    with sessions() as session:
        segment_ids = sorted({w.segment_id for w in watchers(session, now)} | set(segment_exits(session)))
    started: dict[int, int] = {}
    for segment_id in (s for s in segment_ids if s > after):
        if started and budget.spent():
            return Refreshed(started, left_after=max(started))
        started[segment_id] = 0
        try:
            with db.transaction(sessions) as session:
                started[segment_id] = sum(refresh(session, segment_id, now).values())
        except CampaignCanvasError as exc:  # deleted, or its rules no longer compile
            log.warning("segment %s not refreshed: %s", segment_id, exc.message)
    keep_refreshing(sessions, now)
    return Refreshed(started)


def keep_refreshing(sessions: Any, now: datetime) -> bool:
    """Ask for the next refresh if any campaign watches a segment (the job chain stops by
    itself when none does; a launch starts it again). Returns whether one was asked."""
    from engine.core import db

    with db.transaction(sessions) as session:
        if not watchers(session, now) and not segment_exits(session):
            return False
        wakeups.request_segment_refresh(session, now)
    return True
