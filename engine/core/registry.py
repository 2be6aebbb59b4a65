"""The registry of node types.

A node type is declared in exactly one place: a small class (or a decorated function) that
states its type name, label, category, settings JSON Schema, output ports and `process`.
The executor knows nothing else about it, so adding a node never touches the executor.

Declarations are checked when they are made (schema valid, ports named, type name well
formed), because a bad declaration found at run time would strand customers mid-journey.

A type may have several versions (`version = N` on the class), all registered side by side
and keyed by (type, version): a saved campaign names the version of each node, so a campaign
built on version 1 keeps running, with version 1's settings, ports and `process`, after
version 2 is installed; the palette offers the newest. A `Migration` upgrades a node's
settings from one version to the next when someone asks for it (never behind their back:
an upgrade changes what a campaign does, so it makes a new campaign version).
"""

from __future__ import annotations

import builtins
import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from engine.core.errors import InvalidInput, InvalidState, RegistrationError

if TYPE_CHECKING:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import Select
    from sqlalchemy.orm import Session

    from engine.core.batch import Batch
    from engine.core.problems import Problem

ENTRY_POINT_GROUP = "campaign_canvas.nodes"
#: the entry point of the nodes that ship with the product
BUILTIN = "builtin"
CATEGORIES = ("trigger", "flow", "audience", "messaging", "data", "custom")

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_PORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Result = Mapping[str, "Batch"]

#: What the engine may ask a node type beyond routing customers, and the hook each needs.
#: A type says what it is (`capabilities = {"experiment"}`); reports, segment watching and
#: event routing then treat it exactly like a built-in of that kind.
CAPABILITIES: dict[str, tuple[str, str]] = {
    "experiment": ("experiment", "splits customers into variants and picks a winner: the report shows "
                                 "each variant's score"),
    "holdout": ("holdout_ports", "holds customers out of the campaign: the report shows the uplift of the "
                                 "treated over the held-out"),
    "event_entry": ("starts_on", "an entry that starts a journey when a customer performs an event"),
    "segment_watch": ("watched_segment", "an entry that starts a journey when a customer joins a segment"),
}


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its port, its name, and its test group's score."""

    id: str
    name: str
    size: int = 0
    hits: int = 0


@dataclass(frozen=True)
class Experiment:
    """Where an experiment node stands, as its report shows it."""

    metric: str
    variants: Sequence[Variant]
    winner: str | None = None
    #: testing, evaluating (the test is over, the winner not yet picked) or decided
    state: str = "testing"
    decided_at: str | None = None


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
    #: Versions of one type are registered side by side; a node keeps the version it was
    #: saved with. Bump it when settings or ports change in a way old nodes cannot follow.
    version: ClassVar[int] = 1
    #: The template channel (email, sms, push, webapi) of a node that renders content: the
    #: canvas offers that channel's merge tags and a preview. Send nodes default to `channel`.
    template_channel: ClassVar[str | None] = None
    #: Ports where ending the journey is normal (a send's `failed`, a filter's `no`): nothing
    #: connected to one is not worth a warning. The others left unconnected are.
    end_ports: ClassVar[frozenset[str]] = frozenset()
    #: What else the engine may ask this type: names from CAPABILITIES, each with its hook.
    capabilities: ClassVar[frozenset[str]] = frozenset()

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

    # -- hooks: what the engine asks a node type; the defaults say "not this kind" --------
    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """One line in the marketer's words saying what a node with these settings does,
        shown on the node's card in the canvas and with the node in its campaign's report
        (None: the label says enough). `engine.sdk.wording` has the words for rules,
        durations, and the names of stored things and other nodes (`stored_name`)."""
        return None

    @classmethod
    def port_labels(cls, settings: Mapping[str, Any]) -> Mapping[str, str]:
        """{port: what the canvas writes on it} for ports whose id is not the marketer's word
        (an A/B test's variant ids: their names). Ports left out show their id."""
        return {}

    @classmethod
    def waits_for(cls, settings: Mapping[str, Any]) -> set[str]:
        """The events that wake the customers this node holds, as soon as they happen."""
        return set()

    @classmethod
    def starts_on(cls, settings: Mapping[str, Any]) -> str | None:
        """`event_entry`: the event whose every occurrence may start a journey."""
        return None

    @classmethod
    def watched_segment(cls, settings: Mapping[str, Any]) -> int | None:
        """`segment_watch`: the segment whose newcomers start journeys."""
        return None

    @classmethod
    def includes_current(cls, settings: Mapping[str, Any]) -> bool:
        """`segment_watch`: whether the segment's members at launch enter too."""
        return False

    def closes_at(self, account_tz: ZoneInfo) -> datetime | None:
        """Entry nodes: when the entry stops admitting anyone (None: never)."""
        return None

    @classmethod
    def holdout_ports(cls, settings: Mapping[str, Any]) -> tuple[str, str]:
        """`holdout`: (the port of the held-out customers, the port of the treated ones)."""
        raise NotImplementedError

    @classmethod
    def experiment(cls, session: Session, campaign_id: int, node_id: str, settings: Mapping[str, Any],
                   document: Mapping[str, Any], now: datetime) -> Experiment:
        """`experiment`: the variants, their scores so far, and the winner once picked."""
        raise NotImplementedError

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
            #: every registered version of the type, oldest first
            "versions": versions(cls.type),
            #: the version a node of this version can be upgraded to by migrations, if any
            "upgrade_to": upgrade_target(cls.type, cls.version),
            "template_channel": cls.template_channel or getattr(cls, "channel", None),
            "capabilities": sorted(cls.capabilities),
        }


#: type name -> version -> class
_types: dict[str, dict[int, type[NodeType]]] = {}


def register(cls: type[NodeType] | None = None, *, replace: bool = False) -> Any:
    """Register a node type version; usable as `@register` or `@register(replace=True)`.

    Refuses a (type, version) that is already taken by another class unless `replace` is
    set, so two plugins cannot silently shadow each other. Another version of a registered
    type is added beside it: nodes saved with the old version keep running on it.
    """

    def apply(node_cls: type[NodeType]) -> type[NodeType]:
        _check_declaration(node_cls)
        taken = _types.get(node_cls.type, {}).get(node_cls.version)
        if taken is not None and taken is not node_cls and not replace:
            raise RegistrationError(f"version {node_cls.version} of node type {node_cls.type!r} is already "
                                    f"registered (by {taken.__module__}.{taken.__qualname__}); give the new "
                                    "declaration another `version`, or register it with replace=True")
        _check_same_kind(node_cls)
        _types.setdefault(node_cls.type, {})[node_cls.version] = node_cls
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
    version: int = 1,
    replace: bool = False,
) -> Callable[[Callable[..., Result]], type[NodeType]]:
    """Declare a node type from a function `process(batch, settings) -> {port: subset}`."""

    def wrap(fn: Callable[..., Result]) -> builtins.type[NodeType]:  # `type` is the node type's name here
        def process(self: NodeType, batch: Batch) -> Result:
            return fn(batch, self.settings)

        attrs = {
            "type": type,
            "label": label,
            "category": category,
            "schema": schema or {"type": "object", "properties": {}},
            "ports": tuple(ports),
            "description": description or (fn.__doc__ or "").strip(),
            "version": version,
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
    if type(cls.version) is not int or cls.version < 1:
        raise RegistrationError(f"{where}: version must be a whole number from 1 (got {cls.version!r})")
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
    _check_capabilities(cls, where)


def _check_capabilities(cls: type[NodeType], where: str) -> None:
    """A declared capability comes with its hook, so the engine never asks in vain."""
    if not isinstance(cls.capabilities, (set, frozenset, tuple, list)):
        raise RegistrationError(f"{where}: capabilities must be a set of names")
    for name in cls.capabilities:
        if name not in CAPABILITIES:
            raise RegistrationError(f"{where}: unknown capability {name!r} (known: {', '.join(sorted(CAPABILITIES))})")
        hook = CAPABILITIES[name][0]
        if getattr(cls, hook).__func__ is getattr(NodeType, hook).__func__:
            raise RegistrationError(f"{where}: declares the {name!r} capability but not its hook {hook}()")
    if cls.capabilities & {"event_entry", "segment_watch"} and not cls.entry:
        raise RegistrationError(f"{where}: only an entry node (entry = True) can be an event or segment entry")


def has(cls: type[NodeType] | None, capability: str) -> bool:
    """Whether a node type (None: an unknown one) says it has this capability."""
    return cls is not None and capability in cls.capabilities


def type_names(capability: str) -> list[str]:
    """Every registered type name with this capability (in any of its versions)."""
    _autoload()
    return sorted(name for name, by_version in _types.items()
                  if any(capability in c.capabilities for c in by_version.values()))


def _check_same_kind(cls: type[NodeType]) -> None:
    """Every version of a type is the same kind of node (entry or not): a campaign's single
    entry node must stay its entry node whichever version each of its nodes is on."""
    for other in _types.get(cls.type, {}).values():
        if other.version != cls.version and other.entry != cls.entry:
            kind = "an entry node" if other.entry else "not an entry node"
            raise RegistrationError(f"node type {cls.type!r} version {cls.version}: version {other.version} is "
                                    f"{kind}, and every version of a type must agree (`entry`)")


def get(type_name: str, version: int | None = None) -> type[NodeType] | None:
    """That version of the type, or its newest version when `version` is None; None when
    it is not registered."""
    _autoload()
    found = _types.get(type_name)
    if not found:
        return None
    return found[max(found)] if version is None else found.get(version)


def versions(type_name: str) -> list[int]:
    """The registered versions of a type, oldest first (empty when it is unknown)."""
    _autoload()
    return sorted(_types.get(type_name, {}))


def all_types() -> list[type[NodeType]]:
    """The newest version of every type: what the palette offers to new nodes."""
    _autoload()
    newest = [by_version[max(by_version)] for by_version in _types.values() if by_version]
    return sorted(newest, key=lambda c: (CATEGORIES.index(c.category), c.label))


def unregister(type_name: str, version: int | None = None) -> None:
    """Forget one version of a type (every version when `version` is None) and the
    migrations that lead to or from what was forgotten."""
    gone = set(_types.get(type_name, {})) if version is None else {version}
    for number in gone:
        _types.get(type_name, {}).pop(number, None)
    if not _types.get(type_name):
        _types.pop(type_name, None)
    for key, step in list(_migrations.items()):
        if step.type == type_name and {step.from_version, step.to_version} & gone:
            del _migrations[key]


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    """Upgrades a node's settings from one version of its type to the next.

    `upgrade(settings)` gets the old version's settings (valid, defaults filled in) and
    returns the new version's settings. `ports` maps an old port to the new port that takes
    its place, so the edges leaving the node follow it (an edge from a port the new version
    lacks and the map does not name makes the upgraded campaign invalid, which validation
    then says by the edge).
    """

    type: str
    from_version: int
    to_version: int
    upgrade: Callable[[dict[str, Any]], Mapping[str, Any]]
    ports: Mapping[str, str] = field(default_factory=dict, hash=False)

    def apply(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The upgraded settings, or MigrationFailed saying what went wrong: a migration is
        plugin code, and its failure must be a clear answer, never a crash of the caller."""
        try:
            upgraded = self.upgrade(copy.deepcopy(dict(settings)))  # the caller's document stays as it was
        except Exception as exc:  # noqa: BLE001 - any failure of the plugin's code
            raise MigrationFailed(f"the migration of node type {self.type!r} from version {self.from_version} "
                                  f"to {self.to_version} failed ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(upgraded, Mapping):
            raise MigrationFailed(f"the migration of node type {self.type!r} from version {self.from_version} "
                                  f"to {self.to_version} returned {type(upgraded).__name__}, not a settings object")
        return dict(upgraded)


class NoUpgradePath(InvalidState):
    """A node's version cannot reach the newest version: a migration step is missing."""


class MigrationFailed(InvalidInput):
    """A migration raised or returned something that is not a settings object."""


#: (type, from version) -> the step to the next version
_migrations: dict[tuple[str, int], Migration] = {}


def migration(type_name: str, from_version: int, to_version: int, *, ports: Mapping[str, str] | None = None,
              replace: bool = False
              ) -> Callable[[Callable[[dict[str, Any]], Mapping[str, Any]]], Callable[..., Mapping[str, Any]]]:
    """Declare `upgrade(settings) -> settings` from one version of a registered type to the
    next: `@migration("send_sms", 1, 2)`, with `ports={"old": "new"}` when ports were
    renamed. Both versions must be registered first."""

    def wrap(fn: Callable[[dict[str, Any]], Mapping[str, Any]]) -> Callable[..., Mapping[str, Any]]:
        add_migration(Migration(type_name, from_version, to_version, fn, dict(ports or {})), replace=replace)
        return fn

    return wrap


def add_migration(step: Migration, *, replace: bool = False) -> Migration:
    """Register a migration step, checked now: both versions registered, from one version
    to the very next (a chain of steps reaches any later one), no other step for the same
    versions unless `replace`."""
    where = f"migration of node type {step.type!r} from version {step.from_version} to {step.to_version}"
    if not callable(step.upgrade):
        raise RegistrationError(f"{where}: upgrade must be a function of the settings")
    if type(step.from_version) is not int or type(step.to_version) is not int or step.from_version < 1:
        raise RegistrationError(f"{where}: versions must be whole numbers from 1")
    if step.to_version != step.from_version + 1:
        raise RegistrationError(f"{where}: a migration goes from one version to the next "
                                f"({step.from_version} to {step.from_version + 1}); chain steps to go further")
    for number in (step.from_version, step.to_version):
        if get(step.type, number) is None:
            known = ", ".join(map(str, versions(step.type))) or "none"
            raise RegistrationError(f"{where}: version {number} is not registered (registered versions: {known}); "
                                    "register both versions before their migration")
    _check_port_renames(step, where)
    taken = _migrations.get((step.type, step.from_version))
    if taken is not None and taken != step and not replace:
        raise RegistrationError(f"{where}: already declared (by {taken.upgrade.__module__}."
                                f"{taken.upgrade.__qualname__}); register it with replace=True to change it")
    _migrations[(step.type, step.from_version)] = step
    return step


def _check_port_renames(step: Migration, where: str) -> None:
    """Each renamed port is a port name; with static ports, the old one a port of the old
    version and the new one a port of the new version."""
    old, new = get(step.type, step.from_version), get(step.type, step.to_version)
    if not isinstance(step.ports, Mapping):
        raise RegistrationError(f"{where}: ports must map old port names to new ones")
    for before, after in step.ports.items():
        for name in (before, after):
            if not isinstance(name, str) or not _PORT_RE.match(name):
                raise RegistrationError(f"{where}: port name {name!r} must match {_PORT_RE.pattern}")
        if old is not None and not old.has_dynamic_ports() and before not in old.ports:
            raise RegistrationError(f"{where}: renames port {before!r}, which version {old.version} does not have")
        if new is not None and not new.has_dynamic_ports() and after not in new.ports:
            raise RegistrationError(f"{where}: renames a port to {after!r}, which version {new.version} does not have")


def upgrade_path(type_name: str, version: int) -> list[Migration]:
    """The steps from `version` to the newest version of the type, in order (empty when it
    is the newest); NoUpgradePath naming the first missing step."""
    newest = max(versions(type_name), default=version)
    steps = []
    for number in range(version, newest):
        step = _migrations.get((type_name, number))
        if step is None:
            raise NoUpgradePath(f"node type {type_name!r} has no migration from version {number} to {number + 1}, "
                                f"so version {version} cannot be upgraded to {newest}; it keeps working as it is",
                                [{"pointer": "/version", "message": f"no migration from {number} to {number + 1}"}])
        steps.append(step)
    return steps


def upgrade_target(type_name: str, version: int) -> int | None:
    """The newest version a node of `version` can be upgraded to, or None when it is the
    newest already or a migration step is missing."""
    try:
        steps = upgrade_path(type_name, version)
    except NoUpgradePath:
        return None
    return steps[-1].to_version if steps else None


def upgrade_settings(type_name: str, version: int, settings: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """(newest version, settings) after running every step; NoUpgradePath or MigrationFailed."""
    upgraded = dict(settings)
    steps = upgrade_path(type_name, version)
    for step in steps:
        upgraded = step.apply(upgraded)
    return (steps[-1].to_version if steps else version), upgraded


def upgraded_port(type_name: str, version: int, port: str) -> str:
    """The port that takes the place of `port` of a node upgraded from `version` to the
    newest version (itself unless a migration renamed it)."""
    for step in upgrade_path(type_name, version):
        port = step.ports.get(port, port)
    return port


@contextmanager
def snapshot() -> Iterator[None]:
    """Restore the registry afterwards: for tests that register throwaway types."""
    load()
    saved = {name: dict(by_version) for name, by_version in _types.items()}
    saved_migrations = dict(_migrations)
    try:
        yield
    finally:
        _types.clear()
        _types.update(saved)
        _migrations.clear()
        _migrations.update(saved_migrations)


_loaded = False
_loading = False


def _autoload() -> None:
    """Lookups load the installed node types on first use: no caller has to remember to."""
    if not _loaded and not _loading:
        load()


def load() -> None:
    """Register every installed node type: the built-ins and each plugin, all declared the
    same way, by the entry-point group `campaign_canvas.nodes` (setup.cfg). Idempotent.

    An entry point names a NodeType class, or a sequence of classes (the versions of a
    type) and `Migration`s between them: the classes are registered first, so each
    migration finds its versions whatever order they are listed in.
    """
    global _loaded, _loading
    if _loaded or _loading:
        return
    _loading = True
    try:
        declared = [item for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=_builtin_first)
                    for item in _entry_items(ep.name, ep.load())]
        for item in declared:
            version: Any = getattr(item, "version", None)
            if isinstance(item, type) and _types.get(getattr(item, "type", ""), {}).get(version) is None:
                register(item)  # checks the declaration (a missing `type` or `version` included)
        for item in declared:
            if isinstance(item, Migration):
                add_migration(item)
        _loaded = True
    finally:
        _loading = False
    if not _types:
        raise RegistrationError(f"no node types are installed (entry points {ENTRY_POINT_GROUP}): install the "
                                "package (`make install`, or `pip install -e .`) so the built-in nodes are found")


def _builtin_first(ep: metadata.EntryPoint) -> tuple[int, str]:
    """The built-ins register before plugins, so a plugin's migration of one finds it."""
    return (0 if ep.name == BUILTIN else 1, ep.name)


def _entry_items(name: str, obj: object) -> list[type[NodeType] | Migration]:
    """What one entry point declares, each item checked to be a node class or a migration."""
    items = list(obj) if isinstance(obj, Iterable) and not isinstance(obj, (str, type, Mapping)) else [obj]
    checked: list[type[NodeType] | Migration] = []
    for item in items:
        if not isinstance(item, Migration) and not (isinstance(item, type) and issubclass(item, NodeType)):
            raise RegistrationError(f"entry point {name!r} of {ENTRY_POINT_GROUP}: {item!r} is neither a NodeType "
                                    "subclass nor a Migration")
        checked.append(item)
    return checked


def reload_plugins() -> None:
    """Look for plugins again, e.g. after a package was installed in a running process."""
    global _loaded
    _loaded = False
    load()
