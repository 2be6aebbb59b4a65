"""The checks request schemas name with `"x-check"`: what JSON Schema cannot say about a
value (an email address, a time zone, ids unique within a list), in the words of the code
that owns the rule. Each takes the value and answers its problems at pointers relative to
it; a value of the wrong type is the schema's to name, so checks skip it.

Also the schemas that code checks instead (`STAND_INS`): the rule language, whose own
checker names problems at their pointers in its own words, and the campaign document,
which its view validates whole (422, every problem with its node)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.core import clock, jsonschemas
from engine.core.errors import InvalidInput
from engine.core.rules import RULES_SCHEMA, check_rules
from engine.journeys import events
from engine.journeys import profiles as store

Problems = list[dict[str, Any]]

RULES = RULES_SCHEMA["$id"]
CAMPAIGN = f"{jsonschemas.BASE}campaign.schema.json"


def _identity(value: Any) -> Problems:
    return _raised(lambda: store.identity_of(value, "")) if isinstance(value, Mapping) else []


def _profile(patch: bool) -> Callable[[Any], Problems]:
    def check(value: Any) -> Problems:
        if not isinstance(value, Mapping):
            return []
        _fields, found = store.check_fields(value, patch=patch)
        return [{"pointer": f"/{path}" if path else "", "message": message} for path, message in found]

    return check


def _unique_ids(value: Any) -> Problems:
    """The second and later items of a list that repeat an earlier item's `id`."""
    seen: set[Any] = set()
    problems = []
    for i, item in enumerate(value if isinstance(value, list) else []):
        item_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(item_id, str) and item_id in seen:
            problems.append({"pointer": f"/{i}/id", "message": f"repeats the id {item_id!r}: ids must be unique"})
        seen.add(item_id)
    return problems


def _instant(value: Any) -> Problems:
    try:
        clock.parse_instant(value) if isinstance(value, str) else None
    except ValueError:
        return [{"pointer": "", "message": f"must be an ISO 8601 time, e.g. 2026-12-01T08:00:00Z (got '{value}')"}]
    return []


def _printable(value: Any) -> Problems:
    """Text without control or format characters (the words are the schema's x-message)."""
    return [{"pointer": "", "message": ""}] if isinstance(value, str) and not value.isprintable() else []


def _raised(check: Callable[[], Any]) -> Problems:
    try:
        check()
    except InvalidInput as exc:
        return exc.details
    return []


CHECKS: dict[str, jsonschemas.Checker] = {
    "rules": lambda rules: check_rules(rules, ""),
    "identity": _identity,
    "profile": _profile(patch=False),
    "profile-change": _profile(patch=True),
    "event": events.check_event,
    "unique-ids": _unique_ids,
    "instant": _instant,
    "printable": _printable,
}
STAND_INS: dict[str, str | None] = {RULES: "rules", CAMPAIGN: None}
