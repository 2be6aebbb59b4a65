"""The registry of node types.

A node type is declared in exactly one place: a small class (or a decorated function) that
states its type name, label, category, settings JSON Schema, output ports and `process`.
The executor knows nothing else about it, so adding a node never touches the executor.

Declarations are checked when they are made (schema valid, ports named, type name well
formed), because a bad declaration found at run time would strand customers mid-journey.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from engine.errors import RegistrationError

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Select
    from sqlalchemy.orm import Session

    from engine.batch import Batch
    from engine.validation import Problem

ENTRY_POINT_GROUP = "campaign_canvas.nodes"
CATEGORIES = ("trigger", "flow", "audience", "messaging", "data", "custom")

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_PORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Result = Mapping[str, "Batch"]


class NodeType:
    """Base class for node types. Subclass it, set the class attributes, write `process`.

    An instance is one node of one campaign version: `self.id` and `self.settings` come from
    the campaign document (settings already validated against `schema`, defaults filled in).
    """

    type: ClassVar[str]
    label: ClassVar[str]
    category: ClassVar[str] = "custom"
    description: ClassVar[str] = ""
    #: JSON Schema of the settings object; the canvas builds its form from it.
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    #: Static output ports. Override `ports_for` when ports depend on the settings.
    ports: ClassVar[Sequence[str]] = ("out",)
    #: An entry node starts journeys; a campaign has exactly one.
    entry: ClassVar[bool] = False
    #: A delay node may hold customers until a later time; a cycle must pass through one.
    delay: ClassVar[bool] = False
    #: An entry node that keeps admitting customers after launch (events, segment entry).
    continuous: ClassVar[bool] = False
    version: ClassVar[int] = 1
    #: The template channel (email, sms, push, webapi) of a node that renders content: the
    #: canvas offers that channel's merge tags and a preview. Send nodes default to `channel`.
    template_channel: ClassVar[str | None] = None

    def __init__(self, node_id: str, settings: Mapping[str, Any]):
        self.id = node_id
        self.settings = dict(settings)

    @classmethod
    def ports_for(cls, settings: Mapping[str, Any]) -> list[str]:
        """The output ports of a node with these settings."""
        return list(cls.ports)

    @classmethod
    def has_dynamic_ports(cls) -> bool:
        return cls.ports_for.__func__ is not NodeType.ports_for.__func__  # type: ignore[attr-defined]

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        """Checks beyond the JSON Schema (e.g. a reference to another node). Empty when fine.

        Pointers are relative to the node (`/settings/gold`); validation prefixes the node's
        place in the document."""
        return []

    def process(self, batch: Batch) -> Result:
        """Route a batch: return the subset of it leaving by each port.

        Customers in no returned subset and not held (`batch.hold`) end their journey here.
        """
        raise NotImplementedError

    def launch_audience(self, session: Session, now: datetime) -> Select[Any] | None:
        """Entry nodes: the profiles (a one-column select of ids) that enter at launch."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The declaration as the canvas and `/api/node-types` see it."""
        return {
            "type": cls.type,
            "label": cls.label,
            "category": cls.category,
            "description": cls.description,
            "schema": cls.schema,
            "ports": list(cls.ports),
            "dynamic_ports": cls.has_dynamic_ports(),
            "entry": cls.entry,
            "delay": cls.delay,
            "version": cls.version,
            "template_channel": cls.template_channel or getattr(cls, "channel", None),
        }


_types: dict[str, type[NodeType]] = {}


def register(cls: type[NodeType] | None = None, *, replace: bool = False) -> Any:
    """Register a node type; usable as `@register` or `@register(replace=True)`.

    Refuses a type name that is already taken unless `replace` is set, so two plugins cannot
    silently shadow each other.
    """

    def apply(node_cls: type[NodeType]) -> type[NodeType]:
        _check_declaration(node_cls)
        if node_cls.type in _types and not replace and _types[node_cls.type] is not node_cls:
            raise RegistrationError(f"node type {node_cls.type!r} is already registered")
        _types[node_cls.type] = node_cls
        return node_cls

    return apply(cls) if cls is not None else apply


def node_type(
    type: str,
    *,
    label: str,
    category: str = "custom",
    schema: dict[str, Any] | None = None,
    ports: Sequence[str] = ("out",),
    description: str = "",
    replace: bool = False,
) -> Callable[[Callable[..., Result]], type[NodeType]]:
    """Declare a node type from a function `process(batch, settings) -> {port: subset}`."""

    def wrap(fn: Callable[..., Result]) -> type[NodeType]:
        def process(self: NodeType, batch: Batch) -> Result:
            return fn(batch, self.settings)

        attrs = {
            "type": type,
            "label": label,
            "category": category,
            "schema": schema or {"type": "object", "properties": {}},
            "ports": tuple(ports),
            "description": description or (fn.__doc__ or "").strip(),
            "process": process,
            "__module__": fn.__module__,
            "__doc__": fn.__doc__,
        }
        return register(builtins.type(fn.__name__, (NodeType,), attrs), replace=replace)

    return wrap


def _check_declaration(cls: type[NodeType]) -> None:
    where = f"node type {getattr(cls, 'type', cls.__name__)!r}"
    if not isinstance(cls, type) or not issubclass(cls, NodeType):
        raise RegistrationError(f"{cls!r} is not a NodeType subclass")
    if not isinstance(getattr(cls, "type", None), str) or not _TYPE_RE.match(cls.type):
        raise RegistrationError(f"{where}: type must match {_TYPE_RE.pattern}")
    if not isinstance(getattr(cls, "label", None), str) or not cls.label.strip():
        raise RegistrationError(f"{where}: label is required")
    if cls.category not in CATEGORIES:
        raise RegistrationError(f"{where}: category must be one of {', '.join(CATEGORIES)}")
    if not isinstance(cls.schema, dict) or cls.schema.get("type", "object") != "object":
        raise RegistrationError(f"{where}: schema must be a JSON Schema of type object")
    try:
        Draft202012Validator.check_schema(cls.schema)
    except SchemaError as exc:
        raise RegistrationError(f"{where}: invalid settings schema: {exc.message}") from None
    if not cls.ports and not cls.has_dynamic_ports():
        raise RegistrationError(f"{where}: declares no output ports")
    for port in cls.ports:
        if not isinstance(port, str) or not _PORT_RE.match(port):
            raise RegistrationError(f"{where}: port name {port!r} must match {_PORT_RE.pattern}")
    if len(set(cls.ports)) != len(cls.ports):
        raise RegistrationError(f"{where}: duplicate port names")
    if cls.process is NodeType.process:
        raise RegistrationError(f"{where}: process(batch) is not implemented")


def get(type_name: str) -> type[NodeType] | None:
    return _types.get(type_name)


def all_types() -> list[type[NodeType]]:
    return sorted(_types.values(), key=lambda c: (CATEGORIES.index(c.category), c.label))


def unregister(type_name: str) -> None:
    _types.pop(type_name, None)


@contextmanager
def snapshot() -> Iterator[None]:
    """Restore the registry afterwards: for tests that register throwaway types."""
    saved = dict(_types)
    try:
        yield
    finally:
        _types.clear()
        _types.update(saved)


_loaded = False


def load() -> None:
    """Register the built-in nodes and every installed plugin (entry-point group
    `campaign_canvas.nodes`). Idempotent."""
    global _loaded
    import nodes  # noqa: F401  (built-ins register on import)

    if _loaded:
        return
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, NodeType) and obj.type not in _types:
            register(obj)
    _loaded = True


def reload_plugins() -> None:
    """Look for plugins again, e.g. after a package was installed in a running process."""
    global _loaded
    _loaded = False
    load()
