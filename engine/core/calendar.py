"""Local calendar time for entry nodes that run by themselves: typed local times, cron
expressions and "every N" steps, turned into UTC instants.

Times people type are local to a time zone (the node's, else the account's) unless they
carry an offset or Z. Runs are computed in local wall-clock time and each converted to UTC
on its own, so 09:00 Europe/Paris stays 09:00 local across a DST change. A local time that
does not exist (the hour skipped in spring) runs at the offset before the change (02:30
becomes 03:30); one that happens twice (the autumn hour) runs once, the first time.

Pure functions of their arguments: node types use them through engine.sdk.calendar, and
engine/journeys/schedule.py keeps each campaign's next run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from engine.core.clock import parse_duration, to_utc_naive

#: how far ahead a single send must be when it is launched (time to check it, cancel it)
MIN_LEAD = timedelta(hours=1)
#: local times are looked up from this much before the bound: a DST change moves a local
#: time by at most two hours, so no run near the bound is skipped
_DST_MARGIN = timedelta(hours=3)
#: croniter's own search gives up on impossible dates (Feb 30); this bounds ours
_MAX_STEPS = 100_000


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name`; ValueError (naming it) when there is no such zone."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (e.g. Europe/Paris)") from None


def parse_local(text: str) -> datetime:
    """An ISO date or date-time as typed (aware when it has an offset or Z, else naive);
    ValueError naming the text when it is not one."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date and time (e.g. 2026-12-24T09:00)") from None


def local_instant(text: str, tz: ZoneInfo) -> datetime:
    """A typed date-time as naive UTC: local to `tz` unless it carries an offset."""
    when = parse_local(text)
    return to_utc_naive(when if when.tzinfo is not None else when.replace(tzinfo=tz))


def _utc(local: datetime, tz: ZoneInfo) -> datetime:
    return to_utc_naive(local.replace(tzinfo=tz))


def _local(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)


def check_cron(expr: str) -> str | None:
    """Why `expr` is not a 5-field cron expression, or None when it is one."""
    if len(expr.split()) != 5:
        return "must have 5 fields: minute hour day-of-month month day-of-week (e.g. 0 9 * * 1)"
    if not croniter.is_valid(expr):
        return f"{expr!r} is not a valid cron expression (e.g. 0 9 * * 1 for Mondays at 09:00)"
    return None


def _accept(candidate: datetime, bound: datetime, inclusive: bool) -> bool:
    return candidate > bound or (inclusive and candidate == bound)


def next_cron(expr: str, bound: datetime, tz: ZoneInfo, *, inclusive: bool = False) -> datetime | None:
    """The first time `expr` (in `tz` wall-clock time) fires after `bound` (naive UTC)."""
    local = croniter(expr, _local(bound, tz) - _DST_MARGIN)
    for _ in range(_MAX_STEPS):
        candidate = _utc(local.get_next(datetime), tz)
        if _accept(candidate, bound, inclusive):
            return candidate
    return None


def next_every(every: timedelta, start_local: datetime, bound: datetime, tz: ZoneInfo, *,
               inclusive: bool = False) -> datetime | None:
    """The first of start, start + every, start + 2 every, ... (wall-clock steps in `tz`,
    so "1d" from 09:00 is 09:00 every day) after `bound`."""
    steps = math.floor((_local(bound, tz) - start_local - _DST_MARGIN) / every)
    for k in range(max(steps, 0), max(steps, 0) + _MAX_STEPS):
        candidate = _utc(start_local + k * every, tz)
        if _accept(candidate, bound, inclusive):
            return candidate
    return None


def schedule_zone(settings: Mapping[str, Any], account_tz: ZoneInfo) -> ZoneInfo:
    return zone(settings["timezone"]) if settings.get("timezone") else account_tz


def next_run(settings: Mapping[str, Any], after: datetime, account_tz: ZoneInfo, *,
             inclusive: bool = False) -> datetime | None:
    """The next run of a recurring schedule (`cron` or `every`, `start`, optional `end`,
    `timezone`) after `after` (at it too when inclusive); None once past `end`."""
    tz = schedule_zone(settings, account_tz)
    start_local = parse_local(settings["start"])
    if start_local.tzinfo is not None:
        start_local = start_local.astimezone(tz).replace(tzinfo=None)
    start = _utc(start_local, tz)
    bound, inclusive = (start, True) if start > after else (after, inclusive)
    if settings.get("cron"):
        found = next_cron(settings["cron"], bound, tz, inclusive=inclusive)
    else:
        found = next_every(parse_duration(settings["every"]), start_local, bound, tz, inclusive=inclusive)
    end = local_instant(settings["end"], tz) if settings.get("end") else None
    return None if found is None or (end is not None and found > end) else found
