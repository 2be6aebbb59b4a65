"""Recording what customers do, and what their events do to journeys.

Events arrive one at a time or in batches of up to 10,000, and ingestion is set work: one
bulk insert for the events, one lookup of the campaigns the batch's event names concern
(`campaign_events`, rewritten on every campaign save), then per campaign a few statements
whatever the batch size:

1. stop: the journeys of customers who sent one of the campaign's stop events end
   (`exited`), each counted at the node where it stood (port `@exited`). Stop events end
   journeys in paused campaigns too: a paused abandoned-cart flow must not remind someone
   who has since ordered.
2. goal: the journeys that entered within the goal period before a goal event convert
   (`converted_at`), counted once per journey under the `@goal` pseudo node.
3. start: the event trigger admits customers by its frequency (each time, once, once per
   period) and its unique key (an order id never starts two journeys of a customer), seeing
   the earlier events of the same batch, and they enter.

Then, across campaigns, customers waiting at a node for one of the batch's events (`wait
for event`) are made due at once (`engine.core.waiting.wake`).

Stop and goal run before start, so the event that starts a journey never stops or converts
it. Events apply in time order (then batch order), so a stop or goal event later in the
same batch than the one that started a journey applies to that new journey too, and one
that happened before a journey began (a late delivery) does not touch it.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from engine.core import clock, waiting
from engine.core.batch import id_chunks
from engine.core.controls import controls_of
from engine.core.counters import GOAL_NODE
from engine.core.db import upsert
from engine.core.entry import enroll_entries
from engine.core.errors import InvalidInput
from engine.core.executor import EXITED, add_counts
from engine.core.graph import entry_node
from engine.core.models import (
    ACTIVE,
    Campaign,
    CampaignEvent,
    CampaignVersion,
    Enrollment,
    Event,
    EventType,
)
from engine.core.waiting import Occurrence
from engine.journeys.profiles import identity, resolve

#: events one batch may carry; a bigger one is refused whole (HTTP 413)
MAX_BATCH = 10_000
NAME_MAX = 128
#: an event's properties as JSON: events are the table that grows fastest
MAX_PROPERTIES_BYTES = 64 * 1024
#: how far ahead of our clock an event's timestamp may be (senders' clocks drift)
FUTURE_LEEWAY = timedelta(minutes=5)
CONVERTED = "converted"
_NAMES_CHUNK = 500


class TooManyEvents(InvalidInput):
    """A batch over MAX_BATCH: refused whole, as HTTP 413, so the sender splits it."""

    status = 413


@dataclass(frozen=True)
class IncomingEvent:
    """A validated event as a caller sent it: the customer named by identifiers."""

    name: str
    identity: dict[str, str]
    properties: dict[str, Any]
    occurred_at: datetime


@dataclass
class Outcome:
    """What a batch did; `event_ids` only when asked for (a single event's answer)."""

    accepted: int = 0
    profiles_created: int = 0
    journeys_started: int = 0
    journeys_stopped: int = 0
    conversions: int = 0
    event_ids: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"accepted": self.accepted, "profiles_created": self.profiles_created,
                "journeys_started": self.journeys_started, "journeys_stopped": self.journeys_stopped,
                "conversions": self.conversions}


# --------------------------------------------------------------------------- validation
# The shape of an event is declared in schemas/api/events.schema.json (and checked there,
# engine/web/declare.py); what a schema cannot say is checked here, in the same pass.


def check_event(raw: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """What an event's schema cannot say, as problems at pointers relative to the event: a
    printable name, properties every database stores, params named once and not given with
    properties, a timestamp that reads as one and is not ahead of our clock. Values of the
    wrong type are the schema's to name."""
    if not isinstance(raw, Mapping):
        return []
    problems: list[dict[str, Any]] = []
    name = raw.get("event")
    if isinstance(name, str) and not name.isprintable():
        problems += _problem("/event", f"must be an event name of 1 to {NAME_MAX} printable characters")
    properties, params = raw.get("properties"), raw.get("params")
    if properties is not None and params is not None:
        problems += _problem("/params", "give either properties or params, not both")
    elif isinstance(params, list):
        _storable(_params(params, problems), "/params", problems)
    elif isinstance(properties, Mapping):
        _storable(dict(properties), "/properties", problems)
    _timestamp(raw.get("timestamp"), now or clock.now(), problems)
    return problems


def parse_event(raw: Mapping[str, Any], now: datetime | None = None) -> IncomingEvent:
    """A checked event (`POST /api/events`, an item of a batch) as the engine takes it."""
    params = raw.get("params")
    properties = _params(params, []) if params is not None else dict(raw.get("properties") or {})
    stamp = raw.get("timestamp")
    return IncomingEvent(raw["event"], identity(raw["profile"]), properties,
                         clock.parse_instant(stamp) if stamp is not None else now or clock.now())


def parse_batch(raw: Mapping[str, Any], now: datetime | None = None) -> list[IncomingEvent]:
    """A checked batch `{"events": [...]}`."""
    now = now or clock.now()
    return [parse_event(item, now) for item in raw["events"]]


def refuse(problems: list[dict[str, Any]], body: Any) -> InvalidInput:
    """The error for a refused event or batch: how many events are invalid, the first
    problem and how many more; a batch over MAX_BATCH is refused whole as 413, so the
    sender splits it."""
    items = body.get("events") if isinstance(body, Mapping) else None
    if isinstance(items, list) and len(items) > MAX_BATCH:
        return TooManyEvents.field("/events", f"holds {len(items):,} events; send at most {MAX_BATCH:,} per batch",
                                   code="too_many")
    first = problems[0]
    shown = f"{first['pointer'].lstrip('/') or 'body'} {first['message']}"
    more = f" (and {len(problems) - 1} more problems; see details)" if len(problems) > 1 else ""
    total = len(items) if isinstance(items, list) else 1
    scope = "the event is invalid" if total == 1 else f"{_bad_items(problems)} of {total:,} events are invalid"
    return InvalidInput(f"{scope}, nothing was stored: {shown}{more}", problems)


def _storable(properties: dict[str, Any], pointer: str, problems: list[dict[str, Any]]) -> None:
    """Properties that are JSON every database takes (no NaN or Infinity, which Python's
    parser lets through and PostgreSQL refuses), within MAX_PROPERTIES_BYTES."""
    try:
        size = len(json.dumps(properties, allow_nan=False))
    except ValueError:
        problems += _problem(pointer, "must not hold NaN or Infinity (they are not JSON numbers)")
        return
    if size > MAX_PROPERTIES_BYTES:
        problems += _problem(pointer, f"take {size:,} bytes as JSON; at most {MAX_PROPERTIES_BYTES:,} are kept")


def _params(raw: list[Any], problems: list[dict[str, Any]]) -> dict[str, Any]:
    """The params form [{"name", "value"}] as properties; a name given twice is a problem."""
    found: dict[str, Any] = {}
    for i, param in enumerate(raw):
        name = param.get("name") if isinstance(param, Mapping) else None
        if name in found:
            problems += _problem(f"/params/{i}/name", f"repeats the parameter {name!r}")
        elif isinstance(name, str):
            found[name] = param.get("value")
    return found


def _timestamp(raw: Any, now: datetime, problems: list[dict[str, Any]]) -> None:
    if not isinstance(raw, str):
        return
    try:
        when = clock.parse_instant(raw)
    except ValueError:
        problems += _problem("/timestamp", "must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z")
        return
    if when > now + FUTURE_LEEWAY:
        problems += _problem("/timestamp", f"is more than {FUTURE_LEEWAY.seconds // 60} minutes in the future")


def _problem(pointer: str, message: str) -> list[dict[str, Any]]:
    return InvalidInput.field(pointer, message).details


def _bad_items(problems: list[dict[str, Any]]) -> int:
    return len({p["pointer"].split("/")[2] for p in problems if p["pointer"].startswith("/events/")})


# --------------------------------------------------------------------------- recording


def ingest(session: Session, events: Sequence[IncomingEvent], *, return_ids: bool = False) -> Outcome:
    """Store validated events, creating the customers never seen before, and apply them to
    journeys, all in the caller's transaction."""
    keys = [tuple(sorted(e.identity.items())) for e in events]
    distinct = sorted(set(keys))  # one order for everyone: concurrent batches cannot deadlock on new profiles
    ids, created = resolve(session, [dict(k) for k in distinct])
    profile_of = dict(zip(distinct, ids, strict=True))
    occurrences = [Occurrence(profile_of[k], e.name, e.properties, e.occurred_at)
                   for k, e in zip(keys, events, strict=True)]
    outcome = record(session, occurrences, return_ids=return_ids)
    outcome.profiles_created = created
    return outcome


def record(session: Session, occurrences: Sequence[Occurrence], *, return_ids: bool = False) -> Outcome:
    """Store events of known customers and apply them to journeys (stop, goal, start), in
    the caller's transaction."""
    now = clock.now()
    outcome = Outcome(accepted=len(occurrences))
    outcome.event_ids = _store(session, occurrences, return_ids)
    counts: dict[tuple[int, int], Counter[tuple[str, str]]] = defaultdict(Counter)
    for linked in _linked_campaigns(session, {o.name for o in occurrences}):
        _Reactions(session, linked, occurrences, now, outcome, counts).run()
    waiting.wake(session, occurrences, now)  # after stop: journeys just ended wait no more
    for (campaign_id, version_id), counted in sorted(counts.items()):  # one order: no deadlocks
        add_counts(session, campaign_id, version_id, counted, now)
    _register_types(session, occurrences, now)  # last: the hottest rows are locked the shortest
    return outcome


def record_event(session: Session, profile_id: int, name: str, properties: dict[str, Any],
                 occurred_at: datetime) -> int:
    """One event of a known customer (simulations, the demo): the batch path with one item.
    Returns how many journeys it started."""
    return record(session, [Occurrence(profile_id, name, properties, occurred_at)]).journeys_started


def _store(session: Session, occurrences: Sequence[Occurrence], return_ids: bool) -> list[int]:
    rows = [{"profile_id": o.profile_id, "name": o.name, "properties": o.properties, "occurred_at": o.occurred_at}
            for o in occurrences]
    table = Event.__table__  # a Core insert: the ORM's per-row bookkeeping costs more than the database
    if return_ids:
        return list(session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows))
    session.execute(insert(table), rows)
    return []


def _register_types(session: Session, occurrences: Sequence[Occurrence], now: datetime) -> None:
    """Every event name becomes an event type on first use; `last_seen_at` only moves forward."""
    latest: dict[str, datetime] = {}
    for o in occurrences:
        latest[o.name] = max(latest.get(o.name, o.occurred_at), o.occurred_at)
    stmt = upsert(session, EventType)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"], set_={"last_seen_at": stmt.excluded.last_seen_at},
        where=or_(EventType.last_seen_at.is_(None), EventType.last_seen_at < stmt.excluded.last_seen_at),
    )
    session.execute(stmt, [{"name": name, "description": "", "created_at": now, "last_seen_at": seen}
                           for name, seen in sorted(latest.items())])


@dataclass
class _Linked:
    """A campaign some of the batch's events concern, and by which roles."""

    id: int
    status: str
    version_id: int
    document: Mapping[str, Any]
    roles: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _linked_campaigns(session: Session, names: set[str]) -> list[_Linked]:
    """The campaigns the names start, stop or convert: active ones, and paused ones for stop."""
    found: dict[int, _Linked] = {}
    ordered = sorted(names)
    for start in range(0, len(ordered), _NAMES_CHUNK):
        rows = session.execute(
            select(CampaignEvent.campaign_id, CampaignEvent.role, CampaignEvent.event, Campaign.status,
                   Campaign.version_id, CampaignVersion.document)
            .join(Campaign, Campaign.id == CampaignEvent.campaign_id)
            .join(CampaignVersion, CampaignVersion.id == Campaign.version_id)
            .where(CampaignEvent.event.in_(ordered[start:start + _NAMES_CHUNK]),
                   or_(Campaign.status == "active", and_(Campaign.status == "paused", CampaignEvent.role == "stop")))
        )
        for campaign_id, role, name, status, version_id, document in rows:
            linked = found.setdefault(campaign_id, _Linked(campaign_id, status, version_id, document))
            linked.roles[role].add(name)
    return [found[campaign_id] for campaign_id in sorted(found)]


#: an event's place in the batch: (timestamp, position), the order events apply in
Key = tuple[datetime, int]


class _Reactions:
    """One campaign's reactions to a batch: stop and goal on the journeys already there,
    then start, writing each new journey as the batch's later stop and goal events leave it."""

    def __init__(self, session: Session, linked: _Linked, occurrences: Sequence[Occurrence], now: datetime,
                 outcome: Outcome, counts: dict[tuple[int, int], Counter[tuple[str, str]]]):
        self.session, self.linked, self.now, self.outcome, self.counts = session, linked, now, outcome, counts
        active = linked.status == "active"
        goal = linked.document.get("goal") or {}
        self.within = clock.parse_duration(goal["within"]) if active and goal.get("within") else None
        #: the campaign's exit rule ends a journey where it stands once it meets the goal
        self.exit_on_goal = controls_of(linked.document).exit_when == "goal"

        def of(role: str) -> list[tuple[Key, Occurrence]]:
            names = linked.roles.get(role, set())
            return sorted(((o.occurred_at, i), o) for i, o in enumerate(occurrences) if o.name in names)

        self.stops = of("stop")
        self.goals = of("goal") if self.within is not None else []
        self.starts = of("start") if active else []
        #: per customer, the last stop event and the goal events, in batch order
        self.last_stop: dict[int, Key] = {o.profile_id: key for key, o in self.stops}
        self.goal_keys: dict[int, list[Key]] = defaultdict(list)
        for key, o in self.goals:
            self.goal_keys[o.profile_id].append(key)

    def run(self) -> None:
        if self.starts:  # first: this campaign's admissions lock before any of its journey rows
            trigger: Any = entry_node(self.linked.document)  # an event entry (EventTrigger.hold_admissions)
            trigger.hold_admissions(self.session, self.linked.id)
        if self.stops:
            self._stop_existing()
        if self.goals:
            self._convert_existing()
        if self.starts:
            self._start()

    # -- the journeys already there --------------------------------------------------------
    def _stop_existing(self) -> None:
        latest: dict[int, datetime] = {}
        for (when, _), o in self.stops:
            latest[o.profile_id] = when  # in time order: the last one wins
        columns = (Enrollment.id, Enrollment.version_id, Enrollment.node_id, Enrollment.profile_id,
                   Enrollment.entered_at)
        rows = self._select(columns, sorted(latest), ACTIVE)
        self._end([(r.id, r.version_id, r.node_id) for r in rows if r.entered_at <= latest[r.profile_id]])

    def _convert_existing(self) -> None:
        assert self.within is not None
        times: dict[int, list[datetime]] = defaultdict(list)
        for (when, _), o in self.goals:
            times[o.profile_id].append(when)
        first, last = self.goals[0][0][0], self.goals[-1][0][0]
        columns = (Enrollment.id, Enrollment.version_id, Enrollment.profile_id, Enrollment.entered_at,
                   Enrollment.parent_id, Enrollment.node_id, Enrollment.state)
        rows = self._select(columns, sorted(times), Enrollment.converted_at.is_(None),
                            Enrollment.entered_at >= first - self.within, Enrollment.entered_at <= last)
        converted, exiting = [], []
        for r in rows:
            at = _first_within(times[r.profile_id], r.entered_at, self.within)
            if at is not None:
                converted.append((r.id, r.version_id, at, r.parent_id is None))
                if self.exit_on_goal and r.state == "active":
                    exiting.append((r.id, r.version_id, r.node_id))
        self._convert(converted)
        if exiting:
            self._end(exiting)

    def _select(self, columns: tuple[Any, ...], profile_ids: list[int], *conditions: Any) -> list[Row[Any]]:
        """The campaign's journeys of these customers, locked (PostgreSQL) so a concurrent
        batch or worker cannot count them twice."""
        query = select(*columns).where(Enrollment.campaign_id == self.linked.id, *conditions).order_by(Enrollment.id)
        rows: list[Row[Any]] = []
        for part in self._of_profiles(query, profile_ids):
            rows += self.session.execute(part.with_for_update()).all()
        return rows

    def _of_profiles(self, query: Select[Any], profile_ids: list[int]) -> Iterator[Select[Any]]:
        """`query` narrowed to these customers, as statements to run (see `id_chunks`)."""
        for chosen in id_chunks(self.session, Enrollment.profile_id, profile_ids):
            yield query.where(chosen)

    # -- new journeys ----------------------------------------------------------------------
    def _start(self) -> None:
        trigger = entry_node(self.linked.document)
        entries = [self._keyed(trigger, self._entry(trigger.id, key, o), o) for key, o in self._admit(trigger)]
        self.outcome.journeys_started += enroll_entries(self.session, self.linked.id, self.linked.version_id,
                                                        trigger.id, entries, self.now)

    def _entry(self, entry_id: str, key: Key, o: Occurrence) -> dict[str, Any]:
        """A new journey, as the later stop and goal events of the batch leave it: written so
        at once (no second statement, no ids to read back)."""
        entry: dict[str, Any] = {"profile_id": o.profile_id, "entered_at": o.occurred_at,
                                 "context": {"event": o.name, "properties": o.properties}}
        if key < self.last_stop.get(o.profile_id, key):
            entry.update(state="exited", due_at=None)
            self._count_ended([(self.linked.version_id, entry_id)])
        goals = self.goal_keys.get(o.profile_id, [])
        later = bisect_right(goals, key)  # the first goal event after this one
        if later < len(goals) and self.within is not None and goals[later][0] - o.occurred_at <= self.within:
            entry["converted_at"] = goals[later][0]
            self._count_converted([(self.linked.version_id, True)])
            if self.exit_on_goal and entry.get("state") != "exited":
                entry.update(state="exited", due_at=None)
                self._count_ended([(self.linked.version_id, entry_id)])
        return entry

    def _admit(self, trigger: Any) -> list[tuple[Key, Occurrence]]:
        """The start events the trigger's frequency rule and unique key let in
        (`EventTrigger.admit`)."""
        arrivals = [(o.profile_id, o.occurred_at) for _, o in self.starts]
        keys = [trigger.entry_key(o.properties) for _, o in self.starts]
        return [self.starts[i] for i in trigger.admit(self.session, self.linked.id, arrivals, keys)]

    @staticmethod
    def _keyed(trigger: Any, entry: dict[str, Any], o: Occurrence) -> dict[str, Any]:
        """The entry with the journey key of its event, if it has one."""
        key = trigger.entry_key(o.properties)
        return {**entry, "entry_key": key} if key is not None else entry

    # -- writing ---------------------------------------------------------------------------
    def _end(self, ended: list[tuple[int, int, str]]) -> None:
        """(enrollment, version, node): these journeys exit where they stand."""
        for chosen in id_chunks(self.session, Enrollment.id, [e[0] for e in ended]):
            self.session.execute(update(Enrollment).where(chosen).values(state="exited", due_at=None,
                                                                         updated_at=self.now),
                                 execution_options={"synchronize_session": False})
        self._count_ended([(version_id, node_id) for _, version_id, node_id in ended])

    def _convert(self, converted: list[tuple[int, int, datetime, bool]]) -> None:
        """(enrollment, version, when, is a journey's root)."""
        if converted:
            table = Enrollment.__table__
            self.session.execute(
                update(table).where(table.c.id == bindparam("eid")).values(converted_at=bindparam("at")),
                [{"eid": eid, "at": at} for eid, _, at, _ in converted],
            )
        self._count_converted([(version_id, root) for _, version_id, _, root in converted])

    def _count_ended(self, ended: list[tuple[int, str]]) -> None:
        """(version, node): each ended position counts at its node, so a node's arrivals
        still add up to who waits there plus who left by each port."""
        for version_id, node_id in ended:
            self.counts[(self.linked.id, version_id)][(node_id, EXITED)] += 1
        self.outcome.journeys_stopped += len(ended)

    def _count_converted(self, converted: list[tuple[int, bool]]) -> None:
        """(version, is a journey's root): a fork of a journey (parallel paths) converts
        with it, but the journey counts once."""
        for version_id, root in converted:
            if root:
                self.counts[(self.linked.id, version_id)][(GOAL_NODE, CONVERTED)] += 1
                self.outcome.conversions += 1


def _first_within(times: list[datetime], entered_at: datetime, within: timedelta) -> datetime | None:
    """The first of the sorted `times` at or after `entered_at` and at most `within` after it."""
    i = bisect_left(times, entered_at)
    return times[i] if i < len(times) and times[i] - entered_at <= within else None
