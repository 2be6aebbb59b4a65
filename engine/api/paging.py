"""Query-string arguments every list endpoint reads the same way: numbers, flags, pages."""

from __future__ import annotations

import re
from datetime import datetime

from flask import request

from engine import clock
from engine.errors import InvalidInput

#: the largest value of a 64-bit (BIGINT) column: ids, offsets
BIGINT = 2**63 - 1
#: at most 19 digits, so int() never works on a huge string
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def int_arg(name: str) -> int | None:
    """A whole number in ASCII digits that a 64-bit database column holds (None when
    absent): a larger one is a mistake, not a database overflow."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not _INTEGER.fullmatch(raw) or not -BIGINT - 1 <= int(raw) <= BIGINT:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise InvalidInput.field(name, f"must be a whole number from {-BIGINT - 1} to {BIGINT} (got '{shown}')")
    return int(raw)


def flag_arg(name: str) -> bool:
    raw = request.args.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise InvalidInput.field(name, f"must be true or false (got '{raw}')")


def limit_arg(default: int, maximum: int) -> int:
    """`limit`, `default` when absent, at most `maximum` (more is clamped, not refused)."""
    limit = int_arg("limit")
    if limit is None:
        return default
    if limit < 1:
        raise InvalidInput.field("limit", "must be at least 1")
    return min(limit, maximum)


def page_args(default: int = 50, maximum: int = 500) -> tuple[int, int]:
    """(limit, offset) for offset paging."""
    offset = int_arg("offset") or 0
    if offset < 0:
        raise InvalidInput.field("offset", "must be 0 or more")
    return limit_arg(default, maximum), offset


def text_arg(name: str) -> str | None:
    """A text argument (None when absent); NUL is refused, no stored text holds one."""
    raw = request.args.get(name)
    if raw is not None and "\x00" in raw:  # no stored text holds NUL (and PostgreSQL refuses it)
        raise InvalidInput.field(name, "must not contain NUL characters")
    return raw


def id_arg(name: str) -> int | None:
    """A row id: a whole number a BIGINT holds (a bigger one is a mistake, not a miss)."""
    value = int_arg(name)
    if value is not None and not 0 < value <= BIGINT:
        raise InvalidInput.field(name, f"must be an id between 1 and {BIGINT}")
    return value


def instant_arg(name: str) -> datetime | None:
    """An ISO 8601 time as naive UTC (None when absent)."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return clock.parse_instant(raw)
    except ValueError:
        raise InvalidInput.field(name, f"must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z (got '{raw}')") from None
