"""The node palette over HTTP: every registered node type, the ports of one node, and the
versions of a type.

The canvas draws a node's output handles from its ports. Most types declare them once, but
some derive them from the settings (an A/B test has a port per variant, `dynamic_ports`),
and only the node type's own `ports_for` knows how: the canvas asks here while the settings
are being edited, so it never re-implements a node type in TypeScript. The settings may be
incomplete or wrong at that moment, so they are not validated against the schema; whatever
`ports_for` cannot read is a 400 naming `/settings`, never a 500.

A type may have several versions. The list offers the newest of each (the palette's), each
naming every installed version and the version its migrations reach; a node saved on an
older version keeps its form through `GET /<type>/versions/<n>`, asks its ports with
`"version"`, and is upgraded in the editor through `POST /<type>/upgrade`, which runs the
type's migrations on its settings and answers the new settings and the ports renamed on the
way (nothing is stored: the editor's next save makes the new campaign version).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from engine.core import registry
from engine.core.errors import InvalidInput, NotFound
from engine.core.graph import with_defaults
from engine.core.validation import settings_errors
from engine.web.access import read_only
from engine.web.api import body
from engine.web.declare import accepts, responds

bp = Blueprint("node_types", __name__, url_prefix="/api/node-types")


@bp.get("")
@responds(200, schema={"type": "array", "items": {"type": "object"}})
def list_node_types() -> ResponseReturnValue:
    """The newest version of every registered node type, with its settings JSON Schema,
    its ports and `versions` (every installed version)."""
    return jsonify([cls.describe() for cls in registry.all_types()])


@bp.get("/<type_name>/versions/<int:version>")
def node_type_version(type_name: str, version: int) -> ResponseReturnValue:
    """One version's declaration (schema, ports...): the form of a node saved on it."""
    _known(type_name)
    node_class = registry.get(type_name, version)
    if node_class is None:
        raise NotFound(f"node type {type_name!r} has no version {version} installed "
                       f"(installed versions: {_installed(type_name)})")
    return jsonify(node_class.describe())


@bp.post("/<type_name>/ports")
@read_only
@accepts("NodeSettings")
def node_type_ports(type_name: str) -> ResponseReturnValue:
    """The output ports of a node of this type with these settings: `{"settings": {...}}`,
    and `"version"` for a node on an older version than the newest."""
    data = body()
    settings = data["settings"]
    node_class = _version_of(_known(type_name), data)
    # as the engine reads them: the schema's defaults fill what the settings leave out
    return jsonify(ports=ports_of(node_class, with_defaults(node_class.schema, settings)))


@bp.post("/<type_name>/upgrade")
@read_only
@accepts("NodeUpgrade")
def upgrade_node(type_name: str) -> ResponseReturnValue:
    """A node's settings upgraded to the newest version by the type's migrations:
    `{"version": 1, "settings": {...}}` in, `{"type", "from_version", "version", "settings",
    "ports", "port_renames"}` out. 409 when a migration step is missing (the node keeps working as it is)."""
    data = body()
    settings = data["settings"]
    old = _version_of(_known(type_name), data)
    settings = with_defaults(old.schema, settings)
    if found := settings_errors(old.schema, settings):
        raise InvalidInput(f"the settings do not match version {old.version} of {type_name}, so they cannot be "
                           f"upgraded: {found[0][0].lstrip('/')} {found[0][1]}",
                           [{"pointer": at, "code": "invalid_field", "message": phrase} for at, phrase in found])
    try:
        version, upgraded = registry.upgrade_settings(type_name, old.version, settings)
    except registry.MigrationFailed as exc:
        raise InvalidInput.field("/settings", f"cannot be upgraded: {exc.message}") from None
    new = registry.get(type_name, version)
    assert new is not None  # upgrade_settings only reaches registered versions
    ports = ports_of(new, with_defaults(new.schema, upgraded))
    return jsonify(type=type_name, from_version=old.version, version=version, settings=upgraded, ports=ports,
                   port_renames=_port_renames(type_name, old, settings))


def _port_renames(type_name: str, old: type[registry.NodeType], settings: dict[str, Any]) -> dict[str, str]:
    """Old port -> the port that takes its place, for the old ports a migration renamed: the
    editor moves the node's edges with them."""
    renamed = {port: registry.upgraded_port(type_name, old.version, port) for port in ports_of(old, settings)}
    return {port: new for port, new in renamed.items() if new != port}


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


def _known(type_name: str) -> type[registry.NodeType]:
    """The newest version of the type, or NotFound."""
    node_class = registry.get(type_name)
    if node_class is None:
        raise NotFound(f"no node type {type_name!r} is registered")
    return node_class


def _version_of(newest: type[registry.NodeType], data: dict[str, Any]) -> type[registry.NodeType]:
    """The version the body names in `version` (the newest when it names none), or
    InvalidInput naming /version when it is not installed."""
    if "version" not in data:
        return newest
    version = data["version"]
    node_class = registry.get(newest.type, version)
    if node_class is None:
        raise InvalidInput.field("/version", f"{version} is not an installed version of {newest.type} "
                                             f"(installed versions: {_installed(newest.type)})")
    return node_class


def _installed(type_name: str) -> str:
    return ", ".join(map(str, registry.versions(type_name)))

