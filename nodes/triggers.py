"""Entry nodes: how customers start a journey.

- `select_segment`: a segment, an audience or everyone, once: at launch, or at `send_at`
  (a scheduled single send);
- `schedule_trigger`: the same choice of customers, again at every run of a recurring
  schedule (engine.sdk.calendar computes the runs);
- `segment_entry`: each customer who starts matching a segment after launch, once ever
  (engine/journeys/segments.py keeps the memberships and enrolls);
- `event_trigger`: each time (or once, or once per period) a customer performs an event.

Date-times in settings are ISO 8601 as people type them: local to the node's time zone (the
account's unless the node has its own) unless they end with Z or an offset.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from engine.sdk import (
    DURATION,
    Batch,
    InvalidState,
    NodeType,
    Problem,
    Result,
    calendar,
    id_chunks,
    iso,
    parse_duration,
    ref,
)
from engine.sdk.conditions import PROPERTY_PATTERN, matching_profiles
from engine.sdk.data import ACTIVE, AudienceMember, Enrollment, Profile, Segment
from engine.sdk.wording import every_in_words, stored_name

DATE_TIME = {"type": "string", "minLength": 1, "maxLength": 64,
             "description": "ISO date and time, e.g. 2026-12-24T09:00 (local time unless it ends with Z or an "
                            "offset)"}


class _Entry(NodeType):
    category = "trigger"
    entry = True

    def process(self, batch: Batch) -> Result:
        return {"out": batch}


def _date_problems(node_id: str, settings: Mapping[str, Any], keys: tuple[str, ...]) -> list[Problem]:
    problems = []
    for key in keys:
        if settings.get(key):
            try:
                calendar.parse_local(settings[key])
            except ValueError as exc:
                problems.append(Problem(code="invalid_date", node_id=node_id, pointer=f"/settings/{key}",
                                        message=f"Node {node_id!r}: {exc}."))
    return problems


class _FromAudience(_Entry):
    """An entry whose customers are a segment, an audience, or everyone."""

    #: the settings that choose the customers, shared by the node types that enroll a population
    SOURCE_PROPERTIES: dict[str, Any] = {
        "source": {"type": "string", "enum": ["segment", "audience", "all"], "default": "segment",
                   "title": "Customers from"},
        "segment_id": ref("segments", "Segment"),
        "audience_id": ref("audiences", "Audience"),
    }
    SOURCE_RULES: list[dict[str, Any]] = [
        {"if": {"properties": {"source": {"const": "segment"}}}, "then": {"required": ["segment_id"]}},
        {"if": {"properties": {"source": {"const": "audience"}}}, "then": {"required": ["audience_id"]}},
    ]

    @classmethod
    def source_in_words(cls, settings: Mapping[str, Any]) -> str:
        """'Segment: VIPs', 'Audience: Newsletter' or 'Everyone'."""
        source = settings.get("source", "segment")
        if source == "all":
            return "Everyone"
        name = stored_name(f"{source}s", settings.get(f"{source}_id"))
        return f"{source.capitalize()}: {name}" if name else f"A chosen {source}"

    def audience(self, session: Session, now: datetime) -> Select[Any]:
        """The chosen customers now, as a one-column select of profile ids."""
        source = self.settings["source"]
        if source == "audience":
            return select(AudienceMember.profile_id).where(AudienceMember.audience_id == self.settings["audience_id"])
        if source == "segment":
            segment = session.get(Segment, self.settings["segment_id"])
            if segment is None:
                raise InvalidState(f"segment {self.settings['segment_id']} does not exist",
                                   [{"node_id": self.id, "pointer": "/settings/segment_id"}])
            return matching_profiles(session, segment.rules, now)
        return select(Profile.id)


class SelectFromSegment(_FromAudience):
    """Enrolls every customer of a segment, an audience, or all, once: when the campaign
    launches, or at `send_at` (the campaign is `scheduled` until then)."""

    type = "select_segment"
    label = "Select customers from segment"
    description = ("Everyone in the chosen segment or audience enters the campaign once: at launch, or at the "
                   "scheduled send time.")
    schema = {
        "type": "object",
        "properties": {
            **_FromAudience.SOURCE_PROPERTIES,
            "send_at": {**DATE_TIME, "title": "Send at (empty: at launch)"},
        },
        "required": ["source"],
        "allOf": _FromAudience.SOURCE_RULES,
    }
    status_until_first_run = "scheduled"

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        return _date_problems(node_id, settings, ("send_at",))

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """Who, and when: 'Segment: VIPs — at launch'."""
        when = f"at {settings['send_at']}" if settings.get("send_at") else "at launch"
        return f"{cls.source_in_words(settings)} — {when}"

    def launch_audience(self, session: Session, now: datetime) -> Select[Any] | None:
        return None if self.scheduled() else self.audience(session, now)

    def scheduled(self) -> bool:
        return bool(self.settings.get("send_at"))

    def launch_problem(self, now: datetime, account_tz: ZoneInfo) -> tuple[str, str] | None:
        earliest = now + calendar.MIN_LEAD
        if calendar.local_instant(self.settings["send_at"], account_tz) < earliest:
            return ("send_at", f"must be at least 1 hour from now (on or after {iso(earliest)}); leave it empty "
                               "to send at launch")
        return None

    def next_run(self, after: datetime, account_tz: ZoneInfo, *, inclusive: bool = False) -> datetime | None:
        at = calendar.local_instant(self.settings["send_at"], account_tz)
        return at if at > after or (inclusive and at == after) else None

    def run_audience(self, session: Session, campaign_id: int, now: datetime) -> Select[Any]:
        return self.audience(session, now)


class ScheduleTrigger(_FromAudience):
    """Enrolls a segment, an audience or everyone at every run of a recurring schedule."""

    type = "schedule_trigger"
    label = "Recurring schedule"
    description = ("At every run (a cron expression or every N days/hours), the chosen customers enter: each "
                   "at most once, or at every run unless still in the campaign from an earlier one.")
    schema = {
        "type": "object",
        "properties": {
            **_FromAudience.SOURCE_PROPERTIES,
            "cron": {"type": "string", "minLength": 1, "maxLength": 128, "title": "Cron expression",
                     "description": "minute hour day-of-month month day-of-week, e.g. 0 9 * * 1 (Mondays 09:00)"},
            "every": {**DURATION, "title": "Every", "description": "instead of cron: e.g. 1d, 12h, 1w"},
            "start": {**DATE_TIME, "title": "First run from"},
            "end": {**DATE_TIME, "title": "No run after (empty: forever)"},
            "timezone": {"type": "string", "title": "Time zone (account time zone when empty)"},
            "repeat": {"type": "string", "enum": ["once", "many"], "default": "many", "title": "Customers enter",
                       "description": "once: at most once across runs; many: at every run, unless still in "
                                      "the campaign from an earlier run"},
        },
        "required": ["source", "start"],
        "allOf": _FromAudience.SOURCE_RULES,
    }
    status_until_first_run = "active"

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        problems = _date_problems(node_id, settings, ("start", "end"))
        problems += _timing_problems(node_id, settings)
        tz = None
        try:
            tz = calendar.zone(settings.get("timezone")) if settings.get("timezone") else ZoneInfo("UTC")
        except ValueError as exc:
            problems.append(Problem(code="unknown_timezone", node_id=node_id, pointer="/settings/timezone",
                                    message=f"Node {node_id!r}: {exc}."))
        if (tz is not None and not problems and settings.get("end")
                and calendar.local_instant(settings["end"], tz) < calendar.local_instant(settings["start"], tz)):
            problems.append(Problem(code="end_before_start", node_id=node_id, pointer="/settings/end",
                                    message=f"Node {node_id!r}: the end is before the start."))
        return problems

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """Who, and how often: 'Segment: VIPs — every 1 day' or '... — on cron 0 9 * * 1'."""
        when = (f"every {every_in_words(settings['every'])}" if settings.get("every")
                else f"on cron {settings.get('cron')}")
        once = ", each customer once" if settings.get("repeat") == "once" else ""
        return f"{cls.source_in_words(settings)} — {when}{once}"

    def scheduled(self) -> bool:
        return True

    def launch_problem(self, now: datetime, account_tz: ZoneInfo) -> tuple[str, str] | None:
        if self.next_run(now, account_tz, inclusive=True) is None:
            return ("end", "is in the past: the schedule has no run left")
        return None

    def next_run(self, after: datetime, account_tz: ZoneInfo, *, inclusive: bool = False) -> datetime | None:
        return calendar.next_run(self.settings, after, account_tz, inclusive=inclusive)

    def run_audience(self, session: Session, campaign_id: int, now: datetime) -> Select[Any]:
        """The audience minus whoever must not enter again: anyone ever enrolled (repeat
        once), or anyone still in flight (repeat many)."""
        source = self.audience(session, now).subquery()
        earlier = select(Enrollment.id).where(Enrollment.campaign_id == campaign_id,
                                              Enrollment.profile_id == source.c[0])
        if self.settings["repeat"] == "many":
            earlier = earlier.where(ACTIVE)
        return select(source.c[0]).where(~exists(earlier))


def _timing_problems(node_id: str, settings: Mapping[str, Any]) -> list[Problem]:
    """Exactly one of cron and every, each well formed."""
    def problem(pointer: str, message: str) -> list[Problem]:
        return [Problem(code="invalid_schedule", node_id=node_id, pointer=pointer,
                        message=f"Node {node_id!r}: {message}.")]

    cron, every = settings.get("cron"), settings.get("every")
    if cron and every:
        return problem("/settings/every", "give either a cron expression or an interval (every), not both")
    if not cron and not every:
        return problem("/settings/cron", "give a cron expression or an interval (every)")
    if cron and (why := calendar.check_cron(cron)):
        return problem("/settings/cron", f"the cron expression {why}")
    if every and parse_duration(every).total_seconds() < 60:
        return problem("/settings/every", "the interval must be at least 1 minute")
    return []


class SegmentEntry(_Entry):
    """Starts a journey for each customer who newly matches a segment after launch (or is in
    it at launch, with include_current): once per customer, ever, even if they leave the
    segment and come back. Segments are re-evaluated every few minutes and when profiles
    change (engine/journeys/segments.py)."""

    type = "segment_entry"
    label = "Customer enters segment"
    capabilities = frozenset({"segment_watch"})
    description = "Customers enter when they start matching the segment: each customer once."
    continuous = True
    schema = {
        "type": "object",
        "properties": {
            "segment_id": ref("segments", "Segment"),
            "include_current": {"type": "boolean", "default": False, "title": "Customers already in it enter at "
                                                                               "launch too"},
            "until": {**DATE_TIME, "title": "No entries after (empty: no end)"},
        },
        "required": ["segment_id"],
    }

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        return _date_problems(node_id, settings, ("until",))

    @classmethod
    def watched_segment(cls, settings: Mapping[str, Any]) -> int | None:
        return int(settings["segment_id"]) if settings.get("segment_id") is not None else None

    @classmethod
    def includes_current(cls, settings: Mapping[str, Any]) -> bool:
        return bool(settings.get("include_current"))

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'Enters VIPs' (and whether those already in it enter at launch)."""
        name = stored_name("segments", settings.get("segment_id"))
        text = f"Enters {name}" if name else "Enters the chosen segment"
        return text + (", those already in it too" if settings.get("include_current") else "")

    def closes_at(self, account_tz: ZoneInfo) -> datetime | None:
        """When entries end (`until`), as naive UTC; None for never."""
        until = self.settings.get("until")
        return calendar.local_instant(until, account_tz) if until else None


#: the longest journey key kept as it is; a longer one is stored as its SHA-256 digest
KEY_MAX = 255
#: the high half of the PostgreSQL advisory lock key that serializes the admissions of a
#: campaign whose entry has a rule (once, once per period, a unique key); the low half is
#: the campaign id
_KEY_LOCK = 0x0CC0_4B45
#: the journey key of every journey of a "once" campaign: the unique index on (campaign,
#: customer, key) makes a customer's second journey impossible, whatever runs concurrently
ONCE_KEY = "@once"


class EventTrigger(_Entry):
    """Starts a journey each time (or once, or once per period) a customer performs an event.

    With a unique key property (e.g. `order_id`), the value of that event property is the
    journey's key, and one key never starts a second journey of the same customer in the
    campaign: a sender that retries, or a shop that reports an order twice, starts one
    journey. An event without the property (or with a value that is not a string or a
    number) starts a journey as if no key were set: losing the journey of an order whose id
    is missing would be worse than a rare duplicate."""

    type = "event_trigger"
    capabilities = frozenset({"event_entry"})
    label = "Event"
    continuous = True
    schema = {
        "type": "object",
        "properties": {
            "event": {"type": "string", "minLength": 1, "maxLength": 128, "title": "Event name"},
            "frequency": {"type": "string", "enum": ["each", "once", "period"], "default": "each",
                          "title": "Launch", "description": "each time, once per customer, or once per period"},
            "period": {**DURATION, "title": "Period", "default": "1d"},
            "key_property": {"type": "string", "pattern": PROPERTY_PATTERN, "maxLength": 200,
                             "title": "Unique key property",
                             "description": "e.g. order_id: an event whose value of this property already started "
                                            "a journey of the customer starts no other (dotted for nested values; "
                                            "events without it start journeys as if no key were set)"},
        },
        "required": ["event"],
    }

    @classmethod
    def starts_on(cls, settings: Mapping[str, Any]) -> str | None:
        return settings.get("event") or None

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'order — each time', '— once', '— once per 7 days'."""
        frequency = settings.get("frequency", "each")
        how = {"each": "each time", "once": "once"}.get(frequency) or \
            f"once per {every_in_words(settings.get('period', '1d'))}"
        return f"{settings.get('event')} — {how}"

    def entry_key(self, properties: Mapping[str, Any]) -> str | None:
        """The journey key of an event with these properties, or None (no key property, or
        the event has no usable value for it). A number and its text are the same key
        (an order id sent as 1001 or "1001"). In a "once" campaign every journey has the
        same key, so the database itself refuses a customer's second one."""
        if self.settings.get("frequency") == "once":
            return ONCE_KEY
        name = self.settings.get("key_property")
        if not name:
            return None
        value: Any = properties
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = value if isinstance(value, str) else json.dumps(value)
        return text if len(text) <= KEY_MAX else "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def admit(self, session: Session, campaign_id: int, arrivals: Sequence[tuple[int, datetime]],
              keys: Sequence[str | None] | None = None) -> list[int]:
        """Which (customer, event time) arrivals, given in time order, may start a journey:
        the positions of the admitted ones. An arrival admitted earlier in the list holds the
        door for the later ones, so three orders in one batch give 3, 1 or 1 journeys.

        `keys` (one per arrival, see `entry_key`): an arrival whose key already started a
        journey of the customer, in the database or earlier in the list, is refused before
        the frequency rule sees it (so a duplicate holds no door)."""
        keys = list(keys) if keys is not None else [None] * len(arrivals)
        frequency = self.settings.get("frequency", "each")
        if frequency == "each" and not any(keys):
            return list(range(len(arrivals)))
        self.hold_admissions(session, campaign_id)
        taken = _taken_keys(session, campaign_id, arrivals, keys)
        period = parse_duration(self.settings.get("period", "1d")) if frequency == "period" else None
        last = {} if frequency == "each" else _last_entries(session, campaign_id, sorted({p for p, _ in arrivals}))
        admitted = []
        for index, ((pid, when), key) in enumerate(zip(arrivals, keys, strict=True)):
            prior = last.get(pid)
            if (pid, key) in taken or (prior is not None and (period is None or prior > when - period)):
                continue
            if frequency != "each":
                last[pid] = when
            if key is not None:
                taken.add((pid, key))
            admitted.append(index)
        return admitted

    def hold_admissions(self, session: Session, campaign_id: int) -> None:
        """Until the caller's transaction ends, be the only one admitting customers into this
        campaign, when its entry has a rule that earlier journeys decide (once, once per
        period, a unique key): a concurrent batch waits, then sees the journeys this one
        started (READ COMMITTED reads what committed before each statement), so its own
        check is right. PostgreSQL only: SQLite runs one writer at a time anyway. Held
        again by the same transaction, the lock is simply already there."""
        rule = self.settings.get("frequency", "each") != "each" or self.settings.get("key_property")
        if rule and session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock((_KEY_LOCK << 32) + campaign_id)))


def _taken_keys(session: Session, campaign_id: int, arrivals: Sequence[tuple[int, datetime]],
                keys: Sequence[str | None]) -> set[tuple[int, str | None]]:
    """The (customer, key) pairs among these arrivals that already started a journey of the
    campaign. Under `hold_admissions` the answer holds until commit, so the unique index
    behind `enroll_entries`' ON CONFLICT never has to drop a row."""
    pairs = sorted({(pid, key) for (pid, _), key in zip(arrivals, keys, strict=True) if key is not None})
    if not pairs:
        return set()
    taken: set[tuple[int, str | None]] = set()
    for start in range(0, len(pairs), _KEYS_CHUNK):
        part = pairs[start:start + _KEYS_CHUNK]
        rows = session.execute(select(Enrollment.profile_id, Enrollment.entry_key).where(
            Enrollment.campaign_id == campaign_id, Enrollment.profile_id.in_(sorted({p for p, _ in part})),
            Enrollment.entry_key.in_(sorted({k for _, k in part}))))
        taken.update((pid, key) for pid, key in rows)
    return taken & set(pairs)


#: (customer, key) pairs per lookup: two IN lists, within SQLite's bound-parameter limit
_KEYS_CHUNK = 5_000


def _last_entries(session: Session, campaign_id: int, profile_ids: list[int]) -> dict[int, datetime]:
    """When each customer last entered the campaign (forks of a journey do not count)."""
    query = (select(Enrollment.profile_id, func.max(Enrollment.entered_at))
             .where(Enrollment.campaign_id == campaign_id, Enrollment.parent_id.is_(None))
             .group_by(Enrollment.profile_id))
    found: dict[int, datetime] = {}
    for chosen in id_chunks(session, Enrollment.profile_id, profile_ids):
        found.update(session.execute(query.where(chosen)).all())
    return found
