"""The rule language of filter nodes and segments, compiled to one SQL condition.

A rule set is a group ``{"match": "all" | "any", "rules": [...]}``; each item is a rule, a
nested group, or ``{"not": group}``. Rules:

- profile field: ``{"field": "email", "op": "contains", "value": "@example.com"}`` over email, phone,
  external_id, timezone (strings), points (number) and created_at (an ISO timestamp, or a
  signed offset from now such as ``"-30d"``);
- attribute: ``{"field": "attributes.address.city", "op": ..., "value": ...}`` (dotted path
  into the JSON attributes; each part starts with a letter or ``_``);
- membership: ``{"segment": 3}`` / ``{"audience": 7}``, optional ``"negate": true``;
- past events: ``{"event": "purchase", "count": {"op": "gte", "value": 2}, "within": "30d",
  "where": [{"property": "amount", "op": "gt", "value": 50}]}`` (count defaults to
  ``gte 1``), or ``{"event": "login", "last": {"within": "7d"}}`` (the last one happened in
  the last 7 days) / ``{"last": {"before": "30d"}}`` (there was one, the last longer ago);
  both keys together bound the last one on both sides.

Why one expression: a filter node decides for a whole batch (a segment for the whole
population) in one SQL statement, so every rule becomes a predicate on the ``profiles`` row,
and event and membership rules become correlated ``EXISTS`` / ``COUNT`` subqueries. Those
are never joins, so "count eq 0" (never did it) works.

Semantics, the same on SQLite and PostgreSQL:

- The comparison type follows the JSON type of the rule's value: a number compares
  numerically, a string as text, a boolean as a boolean. An attribute whose stored value
  has another JSON type is treated like a missing one for that rule: ``{"op": "eq",
  "value": 42}`` does not match the string ``"42"``.
- A missing attribute (or a JSON ``null``, or a NULL profile field) matches only
  ``not_exists``. It matches no comparison, *including the negative ones* ``ne``,
  ``not_in`` and ``not_contains``: those mean "has a value, and it is not ...", as with
  SQL NULL. To include customers without the value, use ``{"not": group}`` (the exact
  complement: every rule evaluates to true or false, never NULL) or add ``not_exists``
  in an ``any`` group.
- Text comparisons are case-sensitive and ordered by code point (PostgreSQL is told
  ``COLLATE "C"``, SQLite's default is binary), so results do not depend on a locale.
- ``{"match": "all", "rules": []}`` is true, ``{"match": "any", "rules": []}`` false.
- Segments are inlined (their rules loaded and compiled in place); a segment that does not
  exist, is invalid, or references itself (directly or not) is a RuleError, as is an
  audience that does not exist.
- Events are counted from all history unless ``within`` is given (``occurred_at >= now -
  within``); there is no upper bound, so an event stamped a moment after ``now`` counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from engine.core.clock import parse_duration, parse_instant
from engine.core.errors import RuleError
from engine.core.models import MAX_ID, Audience, AudienceMember, Event, Profile, Segment
from engine.core.pointers import token as _token

Problem = dict[str, str]

# -- the language ------------------------------------------------------------------------

#: kind of each profile field: decides which ops and value types apply
PROFILE_FIELDS: dict[str, str] = {
    "email": "string",
    "phone": "string",
    "external_id": "string",
    "timezone": "string",
    "points": "number",
    "created_at": "time",
}
_PATH_PART = r"[A-Za-z_][A-Za-z0-9_-]*"
#: Parts start with a letter or "_" so that a numeric part never means an array index on
#: PostgreSQL (#> indexes arrays) while meaning an object key on SQLite; no quotes, dots or
#: commas, which the JSON path syntaxes of the two databases would read differently.
ATTRIBUTE_PATTERN = rf"^attributes(\.{_PATH_PART})+$"
PROPERTY_PATTERN = rf"^{_PATH_PART}(\.{_PATH_PART})*$"
DURATION_PATTERN = r"^\+?[0-9]+(\.[0-9]+)?(m|min|minutes|h|hours|d|days|w|weeks)$"
#: what a rule's `field` may be, in the words of every message about one (the schema's
#: `x-pattern-hint`, so the canvas and the server say the same)
_ATTRIBUTE_WORDS = "attributes.<name> for a custom attribute (dotted for nested values)"
FIELD_HINT = f"a customer field ({', '.join(PROFILE_FIELDS)}) or {_ATTRIBUTE_WORDS}"
PROPERTY_HINT = ("a property name: letters, digits, '_' and '-', starting with a letter or '_', dotted for nested "
                 "values (e.g. total or address.city)")
DURATION_HINT = "a duration like 30m, 12h, 7d or 2w"

PRESENCE_OPS = ("exists", "not_exists")
ORDER_OPS = ("gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
TEXT_OPS = ("contains", "not_contains", "starts_with")
ALL_OPS = ("eq", "ne", *ORDER_OPS, *LIST_OPS, *TEXT_OPS, *PRESENCE_OPS)
COUNT_OPS = ("eq", "ne", *ORDER_OPS)

#: Segments are inlined where they are named, so rules are bounded where they are
#: compiled, across the segments they name: a chain of segments each naming the last
#: would nest without end (Python's recursion limit), and segments naming the last one
#: twice would double the SQL at each step.
MAX_NESTING = 32
MAX_RULES = 5_000

#: which ops each field kind accepts ("json" = attributes and event properties)
OPS_BY_KIND: dict[str, tuple[str, ...]] = {
    "string": ALL_OPS,
    "json": ALL_OPS,
    "number": ("eq", "ne", *ORDER_OPS, *LIST_OPS, *PRESENCE_OPS),
    "time": ("eq", "ne", *ORDER_OPS),
}

#: the keys each kind of node may have
NODE_KEYS: dict[str, tuple[str, ...]] = {
    "group": ("match", "rules"),
    "not": ("not",),
    "field": ("field", "op", "value"),
    "segment": ("segment", "negate"),
    "audience": ("audience", "negate"),
    "event": ("event", "count", "within", "where", "last"),
}


def _schema() -> dict[str, Any]:
    """RULES_SCHEMA, built once. `$ref`s are root-relative (`#/$defs/...`) and the `$defs`
    names are prefixed, so an embedding schema can hoist `$defs` to its own root (as the
    filter node does); with `$id` kept, it also works embedded as is."""
    scalar = {"type": ["string", "number", "boolean"]}
    duration = {"type": "string", "pattern": DURATION_PATTERN, "x-pattern-hint": DURATION_HINT}
    value_by_op = [
        _if_op(PRESENCE_OPS, {"not": {"required": ["value"]}}),
        _if_op(("eq", "ne"), {"required": ["value"], "properties": {"value": scalar}}),
        _if_op(ORDER_OPS, {"required": ["value"], "properties": {"value": {"type": ["string", "number"]}}}),
        _if_op(LIST_OPS, {"required": ["value"], "properties": {"value": {"type": "array", "items": scalar}}}),
        _if_op(TEXT_OPS, {"required": ["value"], "properties": {"value": {"type": "string"}}}),
    ]
    typed_fields = [
        _if_field(["email", "phone", "external_id", "timezone"],
                  {"type": ["string", "array"], "items": {"type": "string"}}),
        _if_field(["points"], {"type": ["number", "array"], "items": {"type": "number"}}),
        _if_field(["created_at"], {"type": "string"}),
    ]
    field_pattern = f"^({'|'.join(PROFILE_FIELDS)})$|{ATTRIBUTE_PATTERN}"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:campaign-canvas:rules",
        "$ref": "#/$defs/rules_group",
        "$defs": {
            "rules_group": {
                "type": "object",
                "title": "Rule group",
                "properties": {
                    "match": {"enum": ["all", "any"], "default": "all"},
                    "rules": {"type": "array", "items": {"$ref": "#/$defs/rules_item"}, "default": []},
                },
                "additionalProperties": False,
            },
            "rules_item": {
                "oneOf": [
                    {"$ref": "#/$defs/rules_field"},
                    {"$ref": "#/$defs/rules_segment"},
                    {"$ref": "#/$defs/rules_audience"},
                    {"$ref": "#/$defs/rules_event"},
                    {"$ref": "#/$defs/rules_group"},
                    {"$ref": "#/$defs/rules_not"},
                ]
            },
            "rules_not": {
                "type": "object",
                "properties": {"not": {"$ref": "#/$defs/rules_group"}},
                "required": ["not"],
                "additionalProperties": False,
            },
            "rules_field": {
                "type": "object",
                "title": "Profile field or attribute",
                "properties": {
                    "field": {"type": "string", "pattern": field_pattern, "x-pattern-hint": FIELD_HINT},
                    "op": {"enum": list(ALL_OPS)},
                    "value": {},
                },
                "required": ["field", "op"],
                "additionalProperties": False,
                "allOf": value_by_op + typed_fields,
            },
            "rules_segment": _membership("segment"),
            "rules_audience": _membership("audience"),
            "rules_event": {
                "type": "object",
                "title": "Past events",
                "properties": {
                    "event": {"type": "string", "minLength": 1},
                    "count": {
                        "type": "object",
                        "properties": {"op": {"enum": list(COUNT_OPS)}, "value": {"type": "integer", "minimum": 0}},
                        "required": ["op", "value"],
                        "additionalProperties": False,
                        "default": {"op": "gte", "value": 1},
                    },
                    "within": duration,
                    "where": {"type": "array", "items": {"$ref": "#/$defs/rules_property"}},
                    "last": {
                        "type": "object",
                        "properties": {"within": duration, "before": duration},
                        "minProperties": 1,
                        "additionalProperties": False,
                    },
                },
                "required": ["event"],
                "additionalProperties": False,
                "not": {"anyOf": [{"required": ["last", "count"]}, {"required": ["last", "within"]}]},
            },
            "rules_property": {
                "type": "object",
                "properties": {
                    "property": {"type": "string", "pattern": PROPERTY_PATTERN, "x-pattern-hint": PROPERTY_HINT},
                    "op": {"enum": list(ALL_OPS)},
                    "value": {},
                },
                "required": ["property", "op"],
                "additionalProperties": False,
                "allOf": value_by_op,
            },
        },
    }


def _if_op(ops: Sequence[str], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"op": {"enum": list(ops)}}, "required": ["op"]}, "then": then}


def _if_field(fields: Sequence[str], value: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"field": {"enum": list(fields)}}, "required": ["field"]},
            "then": {"properties": {"value": value}}}


def _membership(key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"In {key}",
        "properties": {key: {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                       "negate": {"type": "boolean", "default": False}},
        "required": [key],
        "additionalProperties": False,
    }


RULES_SCHEMA: dict[str, Any] = _schema()

# -- static checks ----------------------------------------------------------------------


def check_rules(rules: Any, pointer: str = "") -> list[Problem]:
    """Every problem in a rule set that can be found without a database, as
    ``{"pointer", "message"}`` (JSON pointers under `pointer`). Empty means compilable,
    unless a segment or audience it names is missing or a segment references itself."""
    problems: list[Problem] = []
    _check_group(rules, pointer, problems)
    return problems


def _add(problems: list[Problem], pointer: str, message: str) -> None:
    problems.append({"pointer": pointer, "message": message})


def _node_kind(node: Mapping[str, Any]) -> str | list[str]:
    """The kind of a rule node, or the list of conflicting kinds it looks like."""
    kinds = [k for k in ("field", "segment", "audience", "event", "not") if k in node]
    if "rules" in node or "match" in node:
        kinds.append("group")
    return kinds[0] if len(kinds) == 1 else kinds


def _check_keys(node: Mapping[str, Any], kind: str, pointer: str, problems: list[Problem]) -> None:
    for key in node:
        if key not in NODE_KEYS[kind]:
            _add(problems, f"{pointer}/{_token(key)}", f"unknown key {key!r} in a {kind} rule")


def _check_group(group: Any, pointer: str, problems: list[Problem]) -> None:
    if not isinstance(group, Mapping) or _node_kind(group) not in ("group", []):
        _add(problems, pointer, 'expected a rule group: {"match": "all" | "any", "rules": [...]}')
        return
    _check_keys(group, "group", pointer, problems)
    if group.get("match", "all") not in ("all", "any"):
        _add(problems, f"{pointer}/match", 'match must be "all" or "any"')
    items = group.get("rules", [])
    if not isinstance(items, list):
        _add(problems, f"{pointer}/rules", "rules must be a list")
        return
    for index, item in enumerate(items):
        _check_node(item, f"{pointer}/rules/{index}", problems)


def _check_node(node: Any, pointer: str, problems: list[Problem]) -> None:
    if not isinstance(node, Mapping):
        _add(problems, pointer, "a rule must be an object")
        return
    kind = _node_kind(node)
    if isinstance(kind, list):
        what = " and ".join(repr(k) for k in kind) if kind else "none"
        _add(problems, pointer, "a rule has exactly one of 'field', 'segment', 'audience', 'event', "
                                f"'rules' or 'not' (found {what})")
        return
    if kind == "group":
        _check_group(node, pointer, problems)
        return
    _check_keys(node, kind, pointer, problems)
    _NODE_CHECKS[kind](node, pointer, problems)


def _check_not(node: Mapping[str, Any], pointer: str, problems: list[Problem]) -> None:
    _check_group(node["not"], f"{pointer}/not", problems)


def _check_membership(node: Mapping[str, Any], pointer: str, problems: list[Problem]) -> None:
    key = "segment" if "segment" in node else "audience"
    if not _is_int(node[key]) or not 1 <= node[key] <= MAX_ID:
        _add(problems, f"{pointer}/{key}", f"{key} must be a {key} id (a positive integer)")
    if not isinstance(node.get("negate", False), bool):
        _add(problems, f"{pointer}/negate", "negate must be true or false")


def _field_kind(field: Any) -> str | None:
    if not isinstance(field, str):
        return None
    if field in PROFILE_FIELDS:
        return PROFILE_FIELDS[field]
    return "json" if re.match(ATTRIBUTE_PATTERN, field) else None


def _check_field(node: Mapping[str, Any], pointer: str, problems: list[Problem]) -> None:
    kind = _field_kind(node["field"])
    if kind is None:
        _add(problems, f"{pointer}/field", f"{node['field']!r} is not a customer field: use one of "
                                           f"{', '.join(PROFILE_FIELDS)}, or {_ATTRIBUTE_WORDS}")
        return
    _check_condition(node, kind, pointer, problems, what=f"field {node['field']!r}")


def _check_condition(node: Mapping[str, Any], kind: str, pointer: str, problems: list[Problem], what: str) -> None:
    """Op and value of a field rule or an event property condition."""
    op = node.get("op")
    if op not in OPS_BY_KIND[kind]:
        _add(problems, f"{pointer}/op", f"unknown op {op!r} for {what}: use {', '.join(OPS_BY_KIND[kind])}")
        return
    if op in PRESENCE_OPS:
        if "value" in node:
            _add(problems, f"{pointer}/value", f"op {op!r} takes no value")
        return
    if "value" not in node:
        _add(problems, f"{pointer}/value", f"op {op!r} needs a value")
        return
    value = node["value"]
    if op in LIST_OPS:
        _check_list(value, kind, op, f"{pointer}/value", problems)
    else:
        _check_scalar(value, kind, op, f"{pointer}/value", problems)


def _check_list(value: Any, kind: str, op: str, pointer: str, problems: list[Problem]) -> None:
    if not isinstance(value, list):
        _add(problems, pointer, f"op {op!r} needs a list of values")
        return
    for index, item in enumerate(value):
        _check_scalar(item, kind, op, f"{pointer}/{index}", problems)
    if len({_json_type(item) for item in value}) > 1:
        _add(problems, pointer, f"the values of op {op!r} must all have the same type")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if math.isfinite(value) else "non-finite number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object" if isinstance(value, Mapping) else "null"


def _allowed_types(kind: str, op: str) -> tuple[str, ...]:
    """The JSON types a value may have for this kind of field and op."""
    if op in TEXT_OPS or kind in ("string", "time"):
        return ("string",)
    if kind == "number":
        return ("number",)
    return ("string", "number") if op in ORDER_OPS else ("string", "number", "boolean")


def _check_scalar(value: Any, kind: str, op: str, pointer: str, problems: list[Problem]) -> None:
    allowed = _allowed_types(kind, op)
    if _json_type(value) not in allowed:
        _add(problems, pointer, f"op {op!r} needs a {' or '.join(allowed)} value here, not {_json_type(value)}")
    elif kind == "time" and _time_value(value) is None:
        _add(problems, pointer, f"{value!r} is neither an ISO timestamp nor a duration like -30d")


def _time_value(text: str) -> datetime | timedelta | None:
    """An ISO instant, or a signed offset from now ('-30d'); None if it is neither."""
    try:
        return parse_duration(text)
    except (ValueError, OverflowError):
        pass
    try:
        return parse_instant(text)
    except ValueError:
        return None


def _check_duration(value: Any, pointer: str, problems: list[Problem]) -> timedelta | None:
    delta = None
    if isinstance(value, str):
        try:
            delta = parse_duration(value)
        except (ValueError, OverflowError):
            delta = None
    if delta is None or delta <= timedelta(0) or delta > timedelta(days=36_500):
        _add(problems, pointer, f"{value!r} is not a positive duration like 30m, 2h, 7d or 1w")
        return None
    return delta


def _check_event(node: Mapping[str, Any], pointer: str, problems: list[Problem]) -> None:
    if not isinstance(node["event"], str) or not node["event"]:
        _add(problems, f"{pointer}/event", "event must be an event name")
    if "last" in node:
        for key in ("count", "within"):
            if key in node:
                _add(problems, f"{pointer}/{key}", f"{key!r} does not go with 'last'")
        _check_last(node["last"], f"{pointer}/last", problems)
    if "count" in node:
        _check_count(node["count"], f"{pointer}/count", problems)
    if "within" in node:
        _check_duration(node["within"], f"{pointer}/within", problems)
    where = node.get("where", [])
    if not isinstance(where, list):
        _add(problems, f"{pointer}/where", "where must be a list of property conditions")
        return
    for index, condition in enumerate(where):
        _check_property(condition, f"{pointer}/where/{index}", problems)


def _check_count(count: Any, pointer: str, problems: list[Problem]) -> None:
    if not isinstance(count, Mapping):
        _add(problems, pointer, 'count must be like {"op": "gte", "value": 1}')
        return
    for key in count:
        if key not in ("op", "value"):
            _add(problems, f"{pointer}/{_token(key)}", f"unknown key {key!r} in count")
    if count.get("op") not in COUNT_OPS:
        _add(problems, f"{pointer}/op", f"unknown count op {count.get('op')!r}: use {', '.join(COUNT_OPS)}")
    if not _is_int(count.get("value")) or count["value"] < 0:
        _add(problems, f"{pointer}/value", "count value must be a whole number, 0 or more")


def _check_last(last: Any, pointer: str, problems: list[Problem]) -> None:
    if not isinstance(last, Mapping) or not last:
        _add(problems, pointer, 'last must be like {"within": "7d"} or {"before": "30d"}')
        return
    for key in last:
        if key not in ("within", "before"):
            _add(problems, f"{pointer}/{_token(key)}", f"unknown key {key!r} in last (use within, before)")
    bounds = {key: _check_duration(last[key], f"{pointer}/{key}", problems)
              for key in ("within", "before") if key in last}
    within, before = bounds.get("within"), bounds.get("before")
    if within and before and within <= before:
        _add(problems, pointer, "within must be longer than before, or nothing can match")


def _check_property(condition: Any, pointer: str, problems: list[Problem]) -> None:
    if not isinstance(condition, Mapping):
        _add(problems, pointer, 'a property condition is like {"property": "plan", "op": "eq", "value": "pro"}')
        return
    for key in condition:
        if key not in ("property", "op", "value"):
            _add(problems, f"{pointer}/{_token(key)}", f"unknown key {key!r} in a property condition")
    name = condition.get("property")
    if not isinstance(name, str) or not re.match(PROPERTY_PATTERN, name):
        _add(problems, f"{pointer}/property", f"{name!r} is not {PROPERTY_HINT}")
        return
    _check_condition(condition, "json", pointer, problems, what=f"property {name!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_NODE_CHECKS: dict[str, Callable[[Mapping[str, Any], str, list[Problem]], None]] = {
    "not": _check_not,
    "field": _check_field,
    "segment": _check_membership,
    "audience": _check_membership,
    "event": _check_event,
}

# -- SQL that differs between the databases -------------------------------------------------

#: JSON type names as PostgreSQL's json_typeof gives them -> SQLite's json_type names
_SQLITE_JSON_TYPES = {
    "number": ("integer", "real"),
    "string": ("text",),
    "boolean": ("true", "false"),
    "object": ("object",),
    "array": ("array",),
}
_PRESENT = tuple(_SQLITE_JSON_TYPES)  # any JSON type but null


@dataclass(frozen=True)
class _Sql:
    """The few places where the same meaning needs different SQL on SQLite and PostgreSQL.

    Everything else uses SQLAlchemy's portable constructs; these exist because the JSON
    accessors convert (SQLite casts a JSON number to text, PostgreSQL fails casting text
    to a number), and because text order and substring search are spelled differently.
    """

    postgresql: bool

    def json_is(
        self, column: SQLColumnExpression[Any], keys: tuple[str, ...], kinds: Sequence[str]
    ) -> ColumnElement[bool]:
        """True when the value at `keys` has one of these JSON types; false when missing
        (never NULL, so NOT of a rule is its exact complement)."""
        if self.postgresql:
            kind = func.json_typeof(column[keys])
            names = list(kinds)
        else:
            kind = func.json_type(column, "$" + "".join(f'."{key}"' for key in keys))
            names = [name for k in kinds for name in _SQLITE_JSON_TYPES[k]]
        return func.coalesce(kind, "missing").in_(names)

    def ordered(self, text: SQLColumnExpression[Any]) -> SQLColumnExpression[Any]:
        """Text compared by code point, whatever the database's locale."""
        return text.collate("C") if self.postgresql else text

    def position(self, text: SQLColumnExpression[Any], part: str) -> ColumnElement[int]:
        """1-based position of `part` in `text`, 0 if absent; case-sensitive on both
        (SQLite's LIKE ignores ASCII case, PostgreSQL's does not)."""
        return func.strpos(text, part) if self.postgresql else func.instr(text, part)


# -- compiling --------------------------------------------------------------------------


def compile_rules(rules: dict[str, Any], session: Session, now: datetime) -> ColumnElement[bool]:
    """One boolean SQL expression over `profiles` that is true for the customers matching
    `rules` at `now` (naive UTC). Raises RuleError with JSON pointers when the rules are
    invalid or name a missing segment or audience, or a segment references itself."""
    problems = check_rules(rules)
    if problems:
        raise RuleError(_summary(problems), details=problems)
    dialect = session.get_bind(mapper=Profile).dialect.name
    return _Compiler(session, now, _Sql(postgresql=dialect == "postgresql")).group(rules, "")


def properties_condition(session: Session, column: Any, where: Sequence[Mapping[str, Any]],
                         now: datetime) -> ColumnElement[bool]:
    """An event rule's `where` conditions (checked by `check_rules`) over a JSON column, as
    one SQL condition with the rule language's exact semantics (typed by the condition's
    value; a missing property matches only `not_exists`)."""
    compiler = _Compiler(session, now, _Sql(postgresql=session.get_bind().dialect.name == "postgresql"))
    return and_(true(), *[compiler.json_condition(column, tuple(c["property"].split(".")), c["op"], c.get("value"))
                          for c in where])


def matching_profiles(session: Session, rules: dict[str, Any], now: datetime) -> Select[Any]:
    """The ids of the matching customers, as a query to run or to restrict further
    (e.g. to a batch with `Batch.matching`)."""
    return select(Profile.id).where(compile_rules(rules, session, now))


def _summary(problems: Sequence[Problem]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"invalid rule at {first['pointer'] or '/'}: {first['message']}{more}"


class _Compiler:
    """Turns checked rules into SQL. Keeps the chain of segments being inlined, to find
    self-references and to report problems inside a segment at the rule that names it."""

    def __init__(self, session: Session, now: datetime, sql: _Sql):
        self.session = session
        self.now = now
        self.sql = sql
        #: (segment id, pointer of the rule naming it), outermost first
        self.inlining: list[tuple[int, str]] = []
        #: groups (and "not"s) open around the rule being compiled, inlined segments' included
        self.depth = 0
        #: rules compiled so far, inlined segments' included
        self.count = 0

    def fail(self, pointer: str, message: str) -> RuleError:
        """The error for a problem at `pointer` of the rules being compiled; inside a
        segment, the pointer is the outermost rule naming a segment, which is the one the
        caller can act on."""
        if self.inlining:
            chain = " → ".join(f"segment {seg}" for seg, _ in self.inlining)
            message = f"{chain}: {message}" if not pointer else f"{chain}, at {pointer}: {message}"
            pointer = self.inlining[0][1]
        return RuleError(message, details=[{"pointer": pointer, "message": message}])

    # -- structure -----------------------------------------------------------------------
    def group(self, group: Mapping[str, Any], pointer: str) -> ColumnElement[bool]:
        if self.depth >= MAX_NESTING:
            raise self.fail(pointer, f"rule groups nest more than {MAX_NESTING} deep, counting the groups of the "
                                     "segments they name: flatten them")
        self.depth += 1
        try:
            parts = [self.node(item, f"{pointer}/rules/{i}") for i, item in enumerate(group.get("rules", []))]
        finally:
            self.depth -= 1
        if group.get("match", "all") == "any":
            return or_(*parts) if parts else false()
        return and_(*parts) if parts else true()

    def node(self, node: Mapping[str, Any], pointer: str) -> ColumnElement[bool]:
        self.count += 1
        if self.count > MAX_RULES:
            raise self.fail(pointer, f"the rules, with those of the segments they name (each time it is named), "
                                     f"are more than {MAX_RULES:,}: name fewer segments, or each fewer times")
        kind = _node_kind(node)
        if kind == "group":
            return self.group(node, pointer)
        if kind == "not":
            return not_(self.group(node["not"], f"{pointer}/not"))
        build = {"field": self.field, "segment": self.segment, "audience": self.audience, "event": self.event}
        return build[str(kind)](node, pointer)

    # -- fields and attributes -----------------------------------------------------------
    def field(self, rule: Mapping[str, Any], pointer: str) -> ColumnElement[bool]:
        field, op = rule["field"], rule["op"]
        value: Any = rule.get("value")
        if field.startswith("attributes."):
            return self.json_condition(Profile.attributes, tuple(field.split(".")[1:]), op, value)
        column: InstrumentedAttribute[Any] = getattr(Profile, field)
        if op in PRESENCE_OPS:
            return column.is_not(None) if op == "exists" else column.is_(None)
        if PROFILE_FIELDS[field] == "time":
            return self.compare(column, op, self.instant(value, f"{pointer}/value"))
        compared = self.compare(column, op, value, text=PROFILE_FIELDS[field] == "string")
        return and_(column.is_not(None), compared) if column.nullable else compared

    def instant(self, text: str, pointer: str) -> datetime:
        """A created_at value as a datetime: an ISO instant, or now plus a signed offset."""
        parsed = _time_value(text)
        assert parsed is not None  # check_rules rejected anything else
        if isinstance(parsed, datetime):
            return parsed
        try:
            return self.now + parsed
        except OverflowError:
            raise self.fail(pointer, f"{text!r} is too far from now") from None

    def json_condition(
        self, column: SQLColumnExpression[Any], keys: tuple[str, ...], op: str, value: Any
    ) -> ColumnElement[bool]:
        """A condition on the JSON value at `keys`: typed by the rule's value, and false
        (not NULL) when the value is missing or of another type."""
        if op in PRESENCE_OPS:
            present = self.sql.json_is(column, keys, _PRESENT)
            return present if op == "exists" else not_(present)
        sample = value[0] if op in LIST_OPS and value else value
        if op in LIST_OPS and not value:  # in [] matches nothing; not_in [] any value
            return false() if op == "in" else self.sql.json_is(column, keys, _PRESENT)
        kind = _json_type(sample)
        if kind == "number":  # bound as floats: an int parameter may be typed INTEGER (32 bits)
            value = [float(v) for v in value] if op in LIST_OPS else float(value)
        guard = self.sql.json_is(column, keys, (kind,))
        element = column[keys]
        typed = {"number": element.as_float, "string": element.as_string, "boolean": element.as_boolean}[kind]()
        # CASE, not AND: PostgreSQL may evaluate AND's sides in any order, and
        # CAST('abc' AS FLOAT) raises; CASE only casts rows where the type fits.
        safe = case((guard, typed))
        return and_(guard, self.compare(safe, op, value, text=kind == "string"))

    def compare(self, left: SQLColumnExpression[Any], op: str, value: Any, text: bool = False) -> ColumnElement[bool]:
        """`left <op> value` for a non-NULL `left`."""
        if op in ORDER_OPS and text:
            left = self.sql.ordered(left)
        if isinstance(value, float) and not text:
            value = literal(value)  # a float bound as a float, not as the column's integer type
        if op in _COMPARATORS:
            return _COMPARATORS[op](left, value)
        if op == "contains":
            return self.sql.position(left, value) > 0
        if op == "not_contains":
            return self.sql.position(left, value) == 0
        if op == "starts_with":
            return func.substr(left, 1, len(value)) == value
        raise AssertionError(f"unchecked op {op!r}")  # check_rules lets no other op through

    # -- membership ----------------------------------------------------------------------
    def segment(self, rule: Mapping[str, Any], pointer: str) -> ColumnElement[bool]:
        segment_id = rule["segment"]
        seen = [seg for seg, _ in self.inlining]
        if segment_id in seen:
            loop = " → ".join(str(s) for s in [*seen[seen.index(segment_id):], segment_id])
            raise self.fail(f"{pointer}/segment", f"segment {segment_id} references itself ({loop})")
        segment = self.session.get(Segment, segment_id)
        if segment is None:
            raise self.fail(f"{pointer}/segment", f"segment {segment_id} does not exist")
        self.inlining.append((segment_id, f"{pointer}/segment"))
        try:
            problems = check_rules(segment.rules)
            if problems:
                raise self.fail("", f"segment {segment_id} ({segment.name!r}) has invalid rules: {_summary(problems)}")
            condition = self.group(segment.rules, "")
        finally:
            self.inlining.pop()
        return not_(condition) if rule.get("negate") else condition

    def audience(self, rule: Mapping[str, Any], pointer: str) -> ColumnElement[bool]:
        audience_id = rule["audience"]
        if self.session.get(Audience, audience_id) is None:
            raise self.fail(f"{pointer}/audience", f"audience {audience_id} does not exist")
        member = (
            select(AudienceMember.profile_id)
            .where(AudienceMember.audience_id == audience_id, AudienceMember.profile_id == Profile.id)
            .correlate(Profile)
            .exists()
        )
        return not_(member) if rule.get("negate") else member

    # -- events --------------------------------------------------------------------------
    def events(
        self, rule: Mapping[str, Any], since: datetime | None = None, until: datetime | None = None
    ) -> list[ColumnElement[bool]]:
        """Conditions picking this customer's events of the rule's name and properties,
        optionally in [since, until); they refer to the outer `profiles` row."""
        conditions = [Event.profile_id == Profile.id, Event.name == rule["event"]]
        for condition in rule.get("where", []):
            keys = tuple(condition["property"].split("."))
            conditions.append(self.json_condition(Event.properties, keys, condition["op"], condition.get("value")))
        if since is not None:
            conditions.append(Event.occurred_at >= since)
        if until is not None:
            conditions.append(Event.occurred_at < until)
        return conditions

    def event(self, rule: Mapping[str, Any], pointer: str) -> ColumnElement[bool]:
        if "last" in rule:
            return self.last_event(rule)
        since = self.now - parse_duration(rule["within"]) if "within" in rule else None
        count = rule.get("count", {"op": "gte", "value": 1})
        events = self.events(rule, since=since)
        wanted = (count["op"], count["value"])
        # EXISTS stops at the first row; COUNT reads them all: use it only when needed.
        if wanted in (("gte", 1), ("gt", 0), ("ne", 0)):
            return _exists(events)
        if wanted in (("eq", 0), ("lt", 1), ("lte", 0)):
            return not_(_exists(events))
        counted = select(func.count(Event.id)).where(*events).correlate(Profile).scalar_subquery()
        return _COMPARATORS[count["op"]](counted, count["value"])

    def last_event(self, rule: Mapping[str, Any]) -> ColumnElement[bool]:
        """The customer's last such event happened in [now - within, now - before)."""
        last = rule["last"]
        since = self.now - parse_duration(last["within"]) if "within" in last else None
        until = self.now - parse_duration(last["before"]) if "before" in last else None
        in_range = _exists(self.events(rule, since=since, until=until))
        if until is None:
            return in_range
        return and_(in_range, not_(_exists(self.events(rule, since=until))))


def _exists(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """EXISTS over events, correlated to the outer `profiles` row (explicitly, so the
    subquery can never pull `profiles` into its own FROM and count across customers)."""
    return select(Event.id).where(*conditions).correlate(Profile).exists()


_COMPARATORS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": lambda left, value: left == value,
    "ne": lambda left, value: left != value,
    "gt": lambda left, value: left > value,
    "gte": lambda left, value: left >= value,
    "lt": lambda left, value: left < value,
    "lte": lambda left, value: left <= value,
    "in": lambda left, value: left.in_(value),
    "not_in": lambda left, value: left.not_in(value),
}
