"""Time, swappable: the system clock in production, a virtual clock in simulations and tests.

Convention: the engine works in naive UTC datetimes (what every database stores the same
way). Time zones are applied only where a person's local time matters (wait until date,
delivery windows), and converted back to naive UTC at once.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)


class VirtualClock:
    """A clock that only moves when told to; never backwards."""

    def __init__(self, start: datetime):
        self._now = to_utc_naive(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        when = to_utc_naive(when)
        with self._lock:
            if when > self._now:
                self._now = when

    def advance(self, delta: timedelta) -> datetime:
        self.set(self._now + delta)
        return self._now


Clock = SystemClock | VirtualClock

_clock: Clock = SystemClock()


def now() -> datetime:
    return _clock.now()


def current() -> Clock:
    return _clock


def use(clock: Clock) -> Clock:
    """Install a process-wide clock (returns the previous one)."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def to_utc_naive(when: datetime) -> datetime:
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def iso(value: datetime | None) -> str | None:
    """A naive UTC time as ISO 8601 with its Z, for JSON answers."""
    return value.isoformat() + "Z" if value is not None else None


def parse_instant(text: str) -> datetime:
    """ISO 8601 (a trailing Z allowed) to naive UTC; naive input is taken as UTC."""
    return to_utc_naive(datetime.fromisoformat(text.replace("Z", "+00:00")))


_UNITS = {"m": "minutes", "min": "minutes", "minutes": "minutes", "h": "hours", "hours": "hours",
          "d": "days", "days": "days", "w": "weeks", "weeks": "weeks"}


#: the longest duration a campaign may name (a wait, a timeout, a period...): a campaign
#: setting beyond it is refused when saved, so no date computed from one can overflow
LONGEST_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """'30m', '2h', '7d', '1w' (also '+2d') to a timedelta; ValueError names the text
    (OverflowError: too long for a timedelta at all)."""
    raw = text.strip().lstrip("+")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):]
    if not number or unit not in _UNITS:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 2h, 7d, 1w)")
    return timedelta(**{_UNITS[unit]: float(number)})


def describe_duration(delta: timedelta) -> str:
    """A duration in words a marketer reads: '10 years', '3 days', '90 minutes'."""
    seconds = int(delta.total_seconds())
    for unit, size in (("year", 365 * 86400), ("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count:,} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:,} seconds"
