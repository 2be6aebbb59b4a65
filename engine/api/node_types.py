"""The node palette over HTTP: every registered node type, and the ports of one node.

The canvas draws a node's output handles from its ports. Most types declare them once, but
some derive them from the settings (an A/B test has a port per variant, `dynamic_ports`),
and only the node type's own `ports_for` knows how: the canvas asks here while the settings
are being edited, so it never re-implements a node type in TypeScript. The settings may be
incomplete or wrong at that moment, so they are not validated against the schema; whatever
`ports_for` cannot read is a 400 naming `/settings`, never a 500.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from engine import registry
from engine.api import body_object
from engine.api.access import read_only
from engine.errors import InvalidInput, NotFound
from engine.graph import with_defaults

bp = Blueprint("node_types", __name__, url_prefix="/api/node-types")


@bp.get("")
def list_node_types():  # type: ignore[no-untyped-def]
    """Every registered node type with its settings JSON Schema and ports."""
    return jsonify([cls.describe() for cls in registry.all_types()])


@bp.post("/<type_name>/ports")
@read_only
def node_type_ports(type_name: str):  # type: ignore[no-untyped-def]
    """The output ports of a node of this type with these settings: `{"settings": {...}}`."""
    node_class = registry.get(type_name)
    if node_class is None:
        raise NotFound(f"no node type {type_name!r} is registered")
    # as the engine reads them: the schema's defaults fill what the settings leave out
    return jsonify(ports=ports_of(node_class, with_defaults(node_class.schema, _settings(body_object()))))


def ports_of(node_class: type[registry.NodeType], settings: dict[str, Any]) -> list[str]:
    """`ports_for(settings)`, or InvalidInput naming /settings when the settings are too
    malformed for it (a plugin's code cannot be trusted to check them first)."""
    try:
        ports = list(node_class.ports_for(settings))
    except Exception as exc:  # noqa: BLE001 - any failure here means settings it cannot read
        raise InvalidInput.field("/settings", f"are too malformed to give the ports of a {node_class.type} node "
                                              f"({exc.__class__.__name__}: {exc})") from None
    if not all(isinstance(port, str) for port in ports):
        raise InvalidInput.field("/settings", f"give a {node_class.type} node ports that are not names (strings)")
    return ports


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    if "settings" not in data:
        raise InvalidInput.field("/settings", "is required: the node's settings object")
    if not isinstance(data["settings"], dict):
        raise InvalidInput.field("/settings", "must be an object")
    return data["settings"]
