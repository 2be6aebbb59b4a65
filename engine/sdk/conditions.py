"""Conditions on customers, in the product's rule language, compiled to one SQL condition.

Use these rather than reading `Profile.attributes[...]` yourself: the rule compiler types
each comparison by its value and treats a value of the wrong kind (a customer whose
"lifetime_value" is "n/a") as not matching, on SQLite and PostgreSQL alike, where a cast in
your own SQL would fail the whole batch on PostgreSQL.

    from engine.sdk.conditions import attribute, matching

    big = matching(batch, attribute("lifetime_value", "gte", settings["threshold"]))
    return {"yes": big, "no": batch.without(big)}

Rules are plain dicts (the same JSON a segment or a filter node stores), so a node's
settings can hold them too: `rules_schema()` is their JSON Schema for a settings form, and
`rule_problems()` turns their mistakes into node problems naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from engine.core.batch import Batch
from engine.core.models import Profile
from engine.core.rules import (
    ALL_OPS,
    PROPERTY_PATTERN,
    RULES_SCHEMA,
    RuleError,
    check_rules,
    compile_rules,
    matching_profiles,
)
from engine.core.validation import Problem
from engine.core.wording import rules_in_words

__all__ = [
    "ALL_OPS", "PROPERTY_PATTERN", "RULES_SCHEMA", "RuleError", "attribute", "check_rules", "field", "group",
    "matching", "matching_profiles", "rule_problems", "rules_in_words", "rules_property", "rules_schema", "where",
]


def attribute(name: str, op: str, value: Any = None) -> dict[str, Any]:
    """A rule on a custom attribute (`name`, dotted for nested values): `op` one of ALL_OPS
    (eq, ne, gt, gte, lt, lte, in, not_in, contains, not_contains, starts_with, exists,
    not_exists)."""
    return field(f"attributes.{name}", op, value)


def field(name: str, op: str, value: Any = None) -> dict[str, Any]:
    """A rule on a customer field (email, phone, points, timezone, created_at, ...) or on
    `attributes.<name>`."""
    rule: dict[str, Any] = {"field": name, "op": op}
    if value is not None:
        rule["value"] = value
    return rule


def group(*rules: Mapping[str, Any], match: str = "all") -> dict[str, Any]:
    """Rules together: every one (`match="all"`) or at least one (`"any"`)."""
    return {"match": match, "rules": [dict(r) for r in rules]}


def _as_group(rules: Mapping[str, Any]) -> dict[str, Any]:
    return dict(rules) if "rules" in rules else group(rules)


def where(session: Session, rules: Mapping[str, Any], now: datetime) -> ColumnElement[bool]:
    """One SQL condition over `Profile`, true for the customers matching `rules` at `now`.
    RuleError (naming each problem's place) when the rules are not valid."""
    return compile_rules(_as_group(rules), session, now)


def matching(batch: Batch, rules: Mapping[str, Any]) -> Batch:
    """The customers of `batch` who match `rules` (a rule or a group), in one query."""
    condition = where(batch.session, rules, batch.now)
    return batch.matching(select(Profile.id).where(condition), Profile.id)


def rules_property(title: str) -> dict[str, Any]:
    """A settings property holding a rule group; put it in a schema made by `rules_schema`
    (or with RULES_SCHEMA's `$defs` at the schema's root), where its references resolve."""
    rules = {k: v for k, v in RULES_SCHEMA.items() if k not in ("$defs", "$schema", "$id")}
    return {**rules, "title": title}


def rules_schema(title: str, name: str = "rules") -> dict[str, Any]:
    """A settings schema with one required rule-group property: the canvas shows the rule
    builder for it."""
    return {"type": "object", "$defs": RULES_SCHEMA.get("$defs", {}),
            "properties": {name: rules_property(title)}, "required": [name]}


def rule_problems(node_id: str, rules: Any, pointer: str) -> list[Problem]:
    """What is wrong with `rules`, as problems of node `node_id` under `pointer` (e.g.
    "/settings/rules"), for a node type's `check`."""
    return [Problem(code="invalid_rules", message=f"Node {node_id!r}: {p['message']}",
                    pointer=f"{pointer}{p['pointer']}", node_id=node_id)
            for p in check_rules(rules)]
