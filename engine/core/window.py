"""Delivery windows: messages reach people between 09:00 and 21:00 in their own time zone.

Outside the window a message waits in the outbox until the window next opens; customers are
grouped by time zone so a batch costs one computation per zone, not per customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OPENS, CLOSES = time(9), time(21)


def zone(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    """The customer's zone, or the account's when unknown or misspelt."""
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


def next_open(now: datetime, tz: ZoneInfo, opens: time = OPENS, closes: time = CLOSES) -> datetime:
    """`now` when inside the window, else the next opening; both naive UTC."""
    local = now.replace(tzinfo=UTC).astimezone(tz)
    if opens <= local.time() < closes:
        return now
    day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
    opening = datetime.combine(day, opens, tzinfo=tz)
    return opening.astimezone(UTC).replace(tzinfo=None)


def send_times(now: datetime, timezones: Sequence[str | None], fallback: ZoneInfo) -> list[datetime]:
    """When each customer's message may go out, one entry per time zone name given."""
    by_zone: dict[str | None, datetime] = {}
    for name in set(timezones):
        by_zone[name] = next_open(now, zone(name, fallback))
    return [by_zone[name] for name in timezones]
