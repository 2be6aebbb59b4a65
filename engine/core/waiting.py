"""Customers waiting for an event: how a waiting node decides, and how ingestion wakes it.

Why the stored events decide: a wakeup is only a hint (it may come late, twice, or never:
the sweeper then re-wakes the position at its timeout), so a node waiting for an event asks
the `events` table whether the customer performed it between reaching the node and the end
of the wait. Whenever the node runs, a replay, a lost wakeup or a late job gives the same
answer (only the moment the customer leaves can differ).

Why ingestion still wakes them: without it, a customer who performs the event would be
noticed only at the timeout. `wake` makes the waiting customers of a batch's events due now,
in a few set statements per batch whatever its size. A node type opts in by declaring
`waits_for(settings) -> set of event names` (the built-in `wait_for_event` does); nothing
else in the engine knows about it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from engine.core import db, wakeups
from engine.core.batch import Batch, id_chunks
from engine.core.graph import node_class
from engine.core.models import ACTIVE, CampaignVersion, Enrollment, Event
from engine.core.rules import properties_condition


@dataclass(frozen=True)
class Occurrence:
    """An event of a customer whose profile is known: what wakes a waiting journey."""

    profile_id: int
    name: str
    properties: dict[str, Any]
    occurred_at: datetime




# --------------------------------------------------------------------------- deciding


def property_condition(session: Session, where: Sequence[Mapping[str, Any]], now: datetime) -> ColumnElement[bool]:
    """Property conditions (the `where` of the rule language's event rules, checked by
    `check_rules`) as one SQL condition over `events.properties`, with the rule language's
    exact semantics: typed by the condition's value, a missing property matches only
    `not_exists`."""
    return properties_condition(session, Event.properties, where, now)


def performed(batch: Batch, name: str, where: Sequence[Mapping[str, Any]], until: Sequence[datetime]) -> list[int]:
    """The positions `i` of `batch` whose customer performed `name` (with properties
    matching `where`) between reaching the node (`node_entered_at[i]`) and `until[i]`, both
    included: one query per batch, on the (profile, name, time) index of events.

    The query reads the matching events of the batch's customers between the earliest
    arrival and the latest `until`, and each member is decided in Python by bisection: the
    bounds differ per member, and a batch's members reached the node close together (or
    they would not be due together), so the window holds few events besides the ones that
    count."""
    live = [i for i, (entered, end) in enumerate(zip(batch.node_entered_at, until, strict=True)) if entered <= end]
    if not live:
        return []
    since, end = min(batch.node_entered_at[i] for i in live), max(until[i] for i in live)
    query = (select(Event.profile_id, Event.occurred_at)
             .where(Event.name == name, Event.occurred_at >= since, Event.occurred_at <= end,
                    property_condition(batch.session, where, batch.now))
             .order_by(Event.occurred_at))
    times: dict[int, list[datetime]] = defaultdict(list)
    profiles = sorted({batch.profile_ids[i] for i in live})
    for chosen in id_chunks(batch.session, Event.profile_id, profiles):
        for profile_id, occurred_at in batch.session.execute(query.where(chosen)):
            times[profile_id].append(occurred_at)
    return [i for i in live if _any_between(times.get(batch.profile_ids[i], []), batch.node_entered_at[i], until[i])]


def _any_between(times: list[datetime], start: datetime, end: datetime) -> bool:
    """Whether the sorted `times` hold one in [start, end]."""
    first = bisect_left(times, start)
    return first < len(times) and times[first] <= end


# --------------------------------------------------------------------------- waking


def wake(session: Session, occurrences: Sequence[Occurrence], now: datetime) -> int:
    """Make the customers who wait at a node for one of these events due now (or at the
    event's time, for a sender whose clock runs a little ahead), and ask for the wakeups;
    returns how many positions moved. In the caller's transaction.

    Set work: one lookup of where the batch's customers wait (their active positions due
    later), one read of the documents of those versions, then one UPDATE per waiting node.
    Positions of paused campaigns are woken too, so they leave at resume, not at the timeout.
    A position another transaction holds locked is skipped rather than waited for (no
    deadlock with a concurrent batch or worker): the node still finds the event at the
    timeout, from the events table."""
    if not occurrences:
        return 0
    senders = _senders(occurrences, now)
    profiles = sorted({o.profile_id for o in occurrences})
    woken = 0
    for (version_id, node_id), names in _waiting_nodes(session, profiles, set(senders), now).items():
        due_groups: dict[datetime, set[int]] = defaultdict(set)
        for name in sorted(names):
            for due, ids in senders[name].items():
                due_groups[due] |= ids
        for due, ids in sorted(due_groups.items()):
            woken += _make_due(session, version_id, node_id, sorted(ids), due, now)
    return woken


def _senders(occurrences: Sequence[Occurrence], now: datetime) -> dict[str, dict[datetime, set[int]]]:
    """event name -> wake time -> customers: now for events up to now; for events stamped
    ahead of our clock (senders' clocks drift), the latest such time of the batch, so a
    batch gives at most two wake times per event name."""
    ahead: dict[str, datetime] = {}
    for o in occurrences:
        if o.occurred_at > now:
            ahead[o.name] = max(ahead.get(o.name, o.occurred_at), o.occurred_at)
    found: dict[str, dict[datetime, set[int]]] = defaultdict(lambda: defaultdict(set))
    for o in occurrences:
        found[o.name][now if o.occurred_at <= now else ahead[o.name]].add(o.profile_id)
    return found


def _waiting_nodes(session: Session, profiles: list[int], names: set[str], now: datetime
                   ) -> dict[tuple[int, str], set[str]]:
    """(version, node) -> the event names it waits for among `names`, for the nodes where
    some of these customers wait until later."""
    positions: set[tuple[int, str]] = set()
    query = (select(Enrollment.version_id, Enrollment.node_id).distinct()
             .where(ACTIVE, Enrollment.due_at > now))
    for chosen in id_chunks(session, Enrollment.profile_id, profiles):
        positions.update((v, n) for v, n in session.execute(query.where(chosen)))
    if not positions:
        return {}
    hooks = _hooks(session, {v for v, _ in positions})
    found: dict[tuple[int, str], set[str]] = {}
    for position in sorted(positions):
        wanted = hooks.get(position, set()) & names
        if wanted:
            found[position] = wanted
    return found


def _hooks(session: Session, version_ids: Iterable[int]) -> dict[tuple[int, str], set[str]]:
    """(version, node) -> the event names each node of these versions waits for."""
    rows = session.execute(select(CampaignVersion.id, CampaignVersion.document)
                           .where(CampaignVersion.id.in_(sorted(version_ids))))
    found: dict[tuple[int, str], set[str]] = {}
    for version_id, document in rows:
        for spec in document.get("nodes", []):
            cls = node_class(spec)
            if cls is not None and (names := set(cls.waits_for(spec.get("settings", {})))):
                found[(version_id, spec["id"])] = names
    return found


def _make_due(session: Session, version_id: int, node_id: str, profiles: list[int], due: datetime,
              now: datetime) -> int:
    """Bring these customers' positions at (version, node) forward to `due`."""
    moved = 0
    for chosen in id_chunks(session, Enrollment.profile_id, profiles):
        waiting = (select(Enrollment.id)
                   .where(Enrollment.version_id == version_id, Enrollment.node_id == node_id, ACTIVE,
                          Enrollment.due_at > due, chosen)
                   .with_for_update(skip_locked=True))
        result = session.execute(update(Enrollment).where(Enrollment.id.in_(waiting.scalar_subquery()))
                                 .values(due_at=due, updated_at=now),
                                 execution_options={"synchronize_session": False, "preserve_rowcount": True})
        moved += max(db.rowcount(result), 0)
    if moved:
        wakeups.request(session, version_id, node_id, due)
    return moved
