"""What each node of a campaign does, in one line, and what its ports are called: the words
on the node cards of the canvas.

Why a service: a node type's `summary` sees only its settings, but a marketer reads the
names of the template, segment or earlier node it uses, never their ids. This module looks
the names up (one query per kind of stored thing) and lends them to the hooks through
`engine.core.wording.naming`. A hook that fails, or a node whose settings are not valid yet,
gets no summary: the canvas then shows the label alone, and validation says what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.graph import label, node_class, with_defaults
from engine.core.models import Audience, Poll, ProviderConfig, Segment, Template
from engine.core.registry import NodeType
from engine.core.validation import settings_errors
from engine.core.wording import Names, naming

log = logging.getLogger(__name__)

#: the API collections (`x-resource` of a settings property) whose names summaries may show
MODELS: dict[str, Any] = {"templates": Template, "segments": Segment, "audiences": Audience, "polls": Poll,
                          "providers": ProviderConfig}


def describe(session: Session, document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{"summaries": {node id: text}, "port_labels": {node id: {port: label}}} for the nodes
    whose settings are valid."""
    nodes = list(valid_nodes(document))
    summaries: dict[str, Any] = {}
    port_labels: dict[str, Any] = {}
    with naming(names(session, document, nodes)):
        for node_id, cls, settings in nodes:
            text = _safely(node_id, lambda c=cls, s=settings: c.summary(s))
            if isinstance(text, str) and text:
                summaries[node_id] = text
            labels = _safely(node_id, lambda c=cls, s=settings: dict(c.port_labels(s)))
            if labels:
                port_labels[node_id] = {str(k): str(v) for k, v in labels.items()}
    return {"summaries": summaries, "port_labels": port_labels}


def names(session: Session, document: Mapping[str, Any],
          nodes: list[tuple[str, type[NodeType], dict[str, Any]]] | None = None) -> Names:
    """The names a summary may use: stored things the nodes refer to (the document's valid
    nodes unless given), every node's label, and the campaign's goal event."""
    nodes = list(valid_nodes(document)) if nodes is None else nodes
    wanted: dict[str, set[int]] = {}
    for _node_id, cls, settings in nodes:
        for resource, ident in _references(cls, settings):
            wanted.setdefault(resource, set()).add(ident)
    found: dict[tuple[str, Any], str] = {}
    for resource, ids in wanted.items():
        model = MODELS[resource]
        found.update(((resource, i), n) for i, n in session.execute(select(model.id, model.name)
                                                                      .where(model.id.in_(ids))))
    for node in document.get("nodes", []):
        if isinstance(node, Mapping) and isinstance(node.get("id"), str) and isinstance(node.get("type"), str):
            found[("nodes", node["id"])] = label(node)
    goal = document.get("goal")
    if isinstance(goal, Mapping) and isinstance(goal.get("event"), str):
        found[("campaign", "goal")] = goal["event"]
    return found


def valid_nodes(document: Mapping[str, Any]) -> Iterator[tuple[str, type[NodeType], dict[str, Any]]]:
    """(id, class, settings with defaults) of each node whose type is known and whose
    settings pass its schema: a hook may rely on its schema, as `check` does."""
    for node in document.get("nodes", []) if isinstance(document.get("nodes"), list) else []:
        if not (isinstance(node, Mapping) and isinstance(node.get("id"), str) and isinstance(node.get("type"), str)):
            continue
        cls = node_class(node)
        raw = node.get("settings", {})
        if cls is None or not isinstance(raw, Mapping):
            continue
        settings = with_defaults(cls.schema, raw)
        if not settings_errors(cls.schema, settings):
            yield node["id"], cls, settings


def _references(cls: type[NodeType], settings: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """(collection, id) of the stored things the settings name: properties marked
    `x-resource`, and segments and audiences inside rules, however deep."""
    for key, prop in cls.schema.get("properties", {}).items():
        resource = prop.get("x-resource") if isinstance(prop, Mapping) else None
        if resource in MODELS and _is_id(settings.get(key)):
            yield resource, settings[key]
    yield from _rule_references(settings)


def _rule_references(value: Any) -> Iterator[tuple[str, int]]:
    if isinstance(value, Mapping):
        for kind in ("segment", "audience"):
            if _is_id(value.get(kind)):
                yield f"{kind}s", value[kind]
        for inner in value.values():
            yield from _rule_references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _rule_references(inner)


def _is_id(value: Any) -> bool:
    return type(value) is int and 0 < value < 2**63


def _safely(node_id: str, hook: Any) -> Any:
    """A hook's answer, or None when it raised: a plugin's mistake costs its card a line,
    never the canvas its validation."""
    try:
        return hook()
    except Exception:
        log.exception("a node type's summary hook failed for node %s", node_id)
        return None
