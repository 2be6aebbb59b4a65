"""Settings in the marketer's words: rules, durations, counts and the names of stored things.

Why here: node cards on the canvas and the report say what each node does in one line
("points ≥ 250 or plan is one of free, pro"), and a node type's `summary` hook, which sees
only its settings, needs the same words for rules and durations whoever wrote the type.

Stored things (templates, segments, audiences...) and other nodes of the campaign are named
by id in settings. A summary cannot query the database, so whoever asks for summaries puts
the names it knows in `naming(...)` for the time of the call, and `stored_name` reads them;
without them a summary falls back to generic words ("Saved template"), never to an id.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from engine.core.clock import describe_duration, parse_duration

#: {(resource, id): name}: `resource` is an API collection (`templates`, `segments`...) or
#: `nodes` (the id of another node of the campaign: its label)
Names = Mapping[tuple[str, Any], str]
_NAMES: contextvars.ContextVar[Names] = contextvars.ContextVar(
    "campaign_canvas_names", default=MappingProxyType({}))

_NUMBER_OPS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
_TEXT_OPS = {"eq": "is", "ne": "is not", "gt": "is after", "gte": "is from", "lt": "is before", "lte": "is up to",
             "in": "is one of", "not_in": "is not one of", "contains": "contains",
             "not_contains": "does not contain", "starts_with": "starts with"}
_PRESENCE = {"exists": "is set", "not_exists": "is not set"}
_FIELD_WORDS = {"external_id": "customer id", "created_at": "sign-up date", "timezone": "time zone"}
_COUNT_WORDS = {"eq": "exactly", "ne": "not exactly", "gt": "more than", "gte": "at least", "lt": "fewer than",
                "lte": "at most"}


@contextmanager
def naming(names: Names) -> Iterator[None]:
    """Summaries made inside this block can name these stored things and nodes."""
    token = _NAMES.set(names)
    try:
        yield
    finally:
        _NAMES.reset(token)


def stored_name(resource: str, ident: Any) -> str | None:
    """The name of a stored thing (or the label of a campaign node) the caller provided."""
    return _NAMES.get().get((resource, ident))


def count_in_words(n: float) -> str:
    """1000 -> '1,000'; 1.5 -> '1.5' (counts and amounts on a card)."""
    return f"{n:,}" if isinstance(n, int) else f"{n:,g}"


def duration_in_words(text: str) -> str:
    """'7d' -> '7 days', '90m' -> '90 minutes'; the text itself when it is not a duration."""
    try:
        return describe_duration(parse_duration(text))
    except (ValueError, OverflowError):
        return text


def every_in_words(text: str) -> str:
    """'7d' -> 'week', '2d' -> '2 days': for 'once per ...' and 'every ...'."""
    return duration_in_words(text).removeprefix("1 ")


def amount_in_words(amount: float, unit: str) -> str:
    """(2, 'days') -> '2 days'; (1, 'hours') -> '1 hour'."""
    noun = unit[:-1] if amount == 1 and unit.endswith("s") else unit
    return f"{count_in_words(amount)} {noun}"


def rules_in_words(rules: Any) -> str:
    """A rule group (or one rule) of the rule language as one line: 'points ≥ 250 or plan
    is one of free, pro'. Nested groups go in parentheses; anything it cannot read is
    called 'a condition' rather than shown as JSON."""
    if isinstance(rules, Mapping) and "rules" in rules:
        return _group(rules, top=True)
    return _rule(rules)


def _group(group: Mapping[str, Any], top: bool = False) -> str:
    items = group.get("rules") if isinstance(group.get("rules"), list) else []
    joiner = " or " if group.get("match") == "any" else " and "
    if not items:
        return "no one" if group.get("match") == "any" else "everyone"
    text = joiner.join(_rule(item) for item in items)
    return text if top or len(items) == 1 else f"({text})"


def _rule(rule: Any) -> str:
    if not isinstance(rule, Mapping):
        return "a condition"
    if "rules" in rule:
        return _group(rule)
    if "not" in rule:
        return f"not {_group(rule['not']) if isinstance(rule['not'], Mapping) else 'a condition'}"
    if "field" in rule:
        return _comparison(_field_name(str(rule["field"])), rule.get("op"), rule.get("value"))
    for kind in ("segment", "audience"):
        if kind in rule:
            name = stored_name(f"{kind}s", rule[kind])
            where = f"{kind} {name}" if name else f"a chosen {kind}"
            return f"not in {where}" if rule.get("negate") else f"in {where}"
    if "event" in rule:
        return _event(rule)
    return "a condition"


def _field_name(field: str) -> str:
    name = field.removeprefix("attributes.")
    return _FIELD_WORDS.get(name, name)


def _comparison(subject: str, op: Any, value: Any) -> str:
    if op in _PRESENCE:
        return f"{subject} {_PRESENCE[op]}"
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if isinstance(value, (int, float)) and op in _NUMBER_OPS:
        return f"{subject} {_NUMBER_OPS[op]} {count_in_words(value)}"
    words = _TEXT_OPS.get(str(op), str(op))
    return f"{subject} {words} {_value(value)}"


def _value(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, str) and value.startswith("-") and duration_in_words(value[1:]) != value[1:]:
        return f"{duration_in_words(value[1:])} ago"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return count_in_words(value)
    return str(value)


def _event(rule: Mapping[str, Any]) -> str:
    name = str(rule["event"])
    given = rule.get("count")
    count: Mapping[str, Any] = given if isinstance(given, Mapping) else {"op": "gte", "value": 1}
    if count.get("op") == "eq" and count.get("value") == 0:
        text = f"never did {name}"
    elif count.get("op") == "gte" and count.get("value") == 1:
        text = f"did {name}"
    else:
        text = f"did {name} {_COUNT_WORDS.get(str(count.get('op')), '')} {count.get('value')} times"
    text += where_in_words(rule.get("where"))
    if rule.get("within"):
        text += f" in the last {duration_in_words(str(rule['within']))}"
    given_last = rule.get("last")
    last: Mapping[str, Any] = given_last if isinstance(given_last, Mapping) else {}
    if last.get("within"):
        text += f", last within {duration_in_words(str(last['within']))}"
    if last.get("before"):
        text += f", last more than {duration_in_words(str(last['before']))} ago"
    return text


def where_in_words(conditions: Any) -> str:
    """Event property conditions as ' with total > 50 and country is FR' ('' for none)."""
    if not isinstance(conditions, list) or not conditions:
        return ""
    parts = [_comparison(str(c.get("property")), c.get("op"), c.get("value")) if isinstance(c, Mapping)
             else "a condition" for c in conditions]
    return " with " + " and ".join(parts)


def quoted(text: Any, words: int = 6) -> str:
    """The first few words of a text in quotes ('“Your order is on its way…”')."""
    parts = str(text).split()
    shown = " ".join(parts[:words])
    return f"“{shown}…”" if len(parts) > words else f"“{shown}”"
