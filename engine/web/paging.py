"""Reading the query parameters every list reads the same way: pages and times.

The parameters themselves are declared with the view (`@query`, schemas/api/paging.schema.json
for the shared ones) and checked before it runs; these read what passed."""

from __future__ import annotations

from datetime import datetime

from engine.core import clock
from engine.web.declare import args


def limit_arg(default: int, maximum: int) -> int:
    """`limit`, `default` when absent, at most `maximum` (more is clamped, not refused)."""
    return min(args().get("limit", default), maximum)


def page_args(default: int = 50, maximum: int = 500) -> tuple[int, int]:
    """(limit, offset) for offset paging."""
    return limit_arg(default, maximum), args().get("offset", 0)


def instant_arg(name: str) -> datetime | None:
    """An ISO 8601 time as naive UTC (None when absent)."""
    raw = args().get(name)
    return clock.parse_instant(raw) if raw else None
