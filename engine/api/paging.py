"""Query-string arguments every list endpoint reads the same way: numbers, flags, pages."""

from __future__ import annotations

from flask import request

from engine.errors import InvalidInput


def int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput.field(name, f"must be a whole number (got '{raw}')") from None


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
