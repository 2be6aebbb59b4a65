"""Campaign document validation: every problem at once, each with a JSON pointer and a sentence.

Why all at once: the canvas marks every faulty node in one pass; stopping at the first
problem would make a marketer fix and retry one problem at a time. Why sentences: the
person reading them builds campaigns, not JSON Schemas.

Order of the checks: the document's shape (schemas/campaign.schema.json), then each node
(duplicate id, unknown type or version, settings against its version's schema), the entry node, the
edges, reachability, cycles, unconnected ports (warnings) and the node types' own `check`.
A check that needs a fact an earlier check found broken skips that node or edge instead of
reporting the same mistake twice.

Each node is checked against the version of its type it names (`version`, the newest when
absent): its schema, its ports and its own `check`, exactly what the executor will run.

Problem codes for the shape: `missing_field`, `unknown_field`, `invalid_field`.

Messages name nodes as the marketer sees them on the canvas: by their label, else by their
type's label ('Send email'), never by the internal id (`n_fpm42w4aanqb`); a problem's
`node_id` is there for the canvas to select the node. Node types write `Node '<id>'` in
their own checks' messages (they know only the id): validation puts the name in its place.
Warnings are kept for what a marketer would act on: a port of a node type's `end_ports`
(a send's `failed`, a filter's `no`) left unconnected is a normal end, not a warning.

Durations are bounded by two schema keywords of ours (`DURATION_MAX`, `DURATION_PARTS`): a
duration string (`"7d"`) or an amount and unit pair (`{"amount": 2, "unit": "days"}`) longer
than its bound is refused when the campaign is saved, naming the field by its title. Why: a
wait of 1e308 weeks would otherwise be saved, launched, and fail at every wakeup forever.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import networkx as nx
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from engine.core import registry
from engine.core.clock import describe_duration, parse_duration
from engine.core.errors import DocumentInvalid
from engine.core.graph import to_networkx, with_defaults
from engine.core.jsonschemas import schema_errors, show
from engine.core.pointers import pointer
from engine.core.problems import ERROR, WARNING, Problem
from engine.core.registry import NodeType

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "campaign.schema.json"


#: on a duration string's schema: the longest duration it may name (itself a duration text)
DURATION_MAX = "x-duration-max"
#: on an object's schema: {"amount": field, "unit": field, "max": duration text}, for a
#: duration given as a number and a unit (minutes, hours, days or weeks)
DURATION_PARTS = "x-duration-parts"


# --------------------------------------------------------------------------- public API


def validate_document(document: object) -> list[Problem]:
    """Every problem of `document`, errors and warnings; empty when it is a good campaign."""
    problems = _shape_problems(document)
    if not (
        isinstance(document, Mapping)
        and isinstance(document.get("nodes"), list)
        and isinstance(document.get("edges"), list)
    ):
        return problems  # too broken for the graph checks to say anything useful
    nodes = _read_nodes(document, problems)
    by_id: dict[str, _Node] = {}
    for node in nodes:
        by_id.setdefault(node.id, node)
    entries = _entry_problems(nodes, problems)
    _edge_problems(document, by_id, problems)
    graph = to_networkx(document)
    _reachability_problems(graph, by_id, entries, problems)
    _cycle_problems(graph, by_id, problems)
    _unconnected_port_problems(document, by_id, problems)
    _node_check_problems(document, nodes, problems)
    return problems


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that make a document unusable (warnings left out)."""
    return [p for p in problems if p.severity == ERROR]


def ensure_valid(document: object) -> None:
    """Raise `DocumentInvalid` listing every error; warnings alone do not block."""
    found = errors(validate_document(document))
    if found:
        noun = "problem" if len(found) == 1 else "problems"
        raise DocumentInvalid(
            f"campaign document is invalid: {len(found)} {noun}", details=[p.to_dict() for p in found]
        )


def format_problems(problems: Iterable[Problem]) -> str:
    """One line per problem, for the terminal: `error  /nodes/2/settings/amount  node w1: ...`."""
    lines = []
    for p in problems:
        where = f"node {p.node_id}: " if p.node_id is not None else ""
        lines.append(f"{p.severity}  {p.pointer or '(document)'}  {where}{p.message}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- shape


@functools.cache
def _document_validator() -> Draft202012Validator:
    """Loaded once per process: the schema file does not change while we run."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return _Validator(schema)


def _shape_problems(document: object) -> list[Problem]:
    problems = []
    for path, code, phrase in schema_errors(_document_validator(), document):
        who, rest, node_id = _locate(document, path)
        if not rest:
            subject = who
        elif who.startswith(("Node", "Connection")):
            subject = f"{who}: {rest}"
        else:
            subject = f"{who} field '{rest}'"
        problems.append(Problem(code, f"{subject} {phrase}.", pointer(path), node_id))
    return problems


def display_name(spec: Any) -> str:
    """A node as the canvas shows it: its label, else its type's label, quoted; a node too
    broken to have either is 'A node'."""
    if not isinstance(spec, Mapping):
        return "A node"
    label = spec.get("label")
    if isinstance(label, str) and label.strip():
        return f"'{label.strip()}'"
    kind = registry.get(spec["type"]) if isinstance(spec.get("type"), str) else None
    return f"'{kind.label}'" if kind else "A node"


def _locate(document: Any, path: list[Any]) -> tuple[str, str, str | None]:
    """Who a document-level error is about, the rest of its path, and the node id if any."""
    if len(path) >= 2 and path[0] in ("nodes", "edges") and isinstance(path[1], int):
        item = document[path[0]][path[1]]
        ident = item.get("id") if isinstance(item, Mapping) else None
        if path[0] == "nodes":
            return f"Node {display_name(item)}", "/".join(map(str, path[2:])), ident if isinstance(ident, str) else None
        return f"Connection #{path[1] + 1}", "/".join(map(str, path[2:])), None
    if not path:
        return "The campaign document", "", None
    return "The campaign", "/".join(map(str, path)), None


# --------------------------------------------------------------------------- nodes


@dataclass
class _Node:
    """A node of the document as the later checks need it."""

    index: int
    id: str
    spec: Mapping[str, Any]
    #: the class of the node's version of its type; None when either is unknown
    cls: type[NodeType] | None = None
    #: settings with defaults filled in; None when missing from the type or invalid
    settings: dict[str, Any] | None = None
    #: whether it is an entry node, known from any version of a known type (they all agree),
    #: so an unknown version is reported once, not again as a missing entry
    entry: bool = False

    @property
    def pointer(self) -> str:
        return f"/nodes/{self.index}"

    @property
    def name(self) -> str:
        return display_name(self.spec)

    def ports(self) -> list[str] | None:
        """Output ports, or None when they cannot be known (unknown type, bad settings)."""
        if self.cls is None or self.settings is None:
            return None
        return list(self.cls.ports_for(self.settings))


def _read_nodes(document: Mapping[str, Any], problems: list[Problem]) -> list[_Node]:
    """Nodes with a usable id; reports duplicate ids, unknown types and versions, and
    invalid settings."""
    nodes: list[_Node] = []
    seen: set[str] = set()
    for index, spec in enumerate(document["nodes"]):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("id"), str):
            continue  # reported by the schema
        node = _Node(index, spec["id"], spec)
        nodes.append(node)
        if node.id in seen:
            problems.append(
                Problem(
                    "duplicate_node_id",
                    f"{node.name} shares its id with another node; each node needs its own id "
                    "(delete one and add it again).",
                    f"{node.pointer}/id",
                    node.id,
                )
            )
        seen.add(node.id)
        node.cls = _node_class(node, problems)
        newest = registry.get(spec["type"]) if isinstance(spec.get("type"), str) else None
        node.entry = newest is not None and newest.entry
        if node.cls is not None:
            node.settings = _check_settings(node, problems)
    return nodes


def _node_class(node: _Node, problems: list[Problem]) -> type[NodeType] | None:
    """The node's type at the version it names (the newest when it names none), or None
    after reporting an unknown type or version (a malformed one the schema reports)."""
    type_name, version = node.spec.get("type"), node.spec.get("version")
    if not isinstance(type_name, str):
        return None
    if not registry.versions(type_name):
        problems.append(_unknown_type(node, type_name))
        return None
    if "version" not in node.spec:
        return registry.get(type_name)
    if type(version) is not int or version < 1:
        return None  # reported by the schema
    cls = registry.get(type_name, version)
    if cls is None:
        problems.append(_unknown_version(node, type_name, version))
    return cls


def _unknown_type(node: _Node, type_name: str) -> Problem:
    known = [t.type for t in registry.all_types()]
    close = difflib.get_close_matches(type_name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return Problem(
        "unknown_type",
        f"{node.name} uses the node type '{type_name}', which is not installed.{hint}",
        f"{node.pointer}/type",
        node.id,
    )


def _unknown_version(node: _Node, type_name: str, version: int) -> Problem:
    installed = registry.versions(type_name)
    return Problem(
        "unknown_version",
        f"{node.name} uses version {version} of the node type '{type_name}', which is not "
        f"installed (installed versions: {', '.join(map(str, installed))}). Choose an installed version "
        "or install the one it was built with.",
        f"{node.pointer}/version",
        node.id,
    )


def settings_errors(schema: Mapping[str, Any], settings: object) -> list[tuple[str, str]]:
    """(pointer from `/settings`, phrase) for each way `settings` break a settings schema:
    the sentences validation gives, for callers that check one node's settings alone."""
    validator = _Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [(pointer(["settings", *path]), phrase) for path, _code, phrase in schema_errors(validator, settings)]


def _check_settings(node: _Node, problems: list[Problem]) -> dict[str, Any] | None:
    """The settings with defaults filled in if they match the type's schema, else None.

    Defaults are filled before validating because that is what the executor runs with.
    """
    assert node.cls is not None
    raw = node.spec.get("settings", {})
    if not isinstance(raw, Mapping):
        return None  # reported by the schema
    settings = with_defaults(node.cls.schema, raw)
    found = settings_errors(node.cls.schema, settings)
    for at, phrase in found:
        field = _field_words(node.cls.schema, at)
        message = f"{node.name}: {phrase}." if field in phrase else f"{node.name}: {field} {phrase}."
        problems.append(Problem("invalid_settings", message, node.pointer + at, node.id))
    return None if found else settings


def _field_words(schema: Mapping[str, Any], at: str) -> str:
    """A settings field as its form names it: `/settings/amount` -> 'Wait for'; a nested
    one by its outer field's title and the rest of its path ('Customers who match' (1/op));
    the path itself when the schema gives no title."""
    parts = at.split("/")[2:]  # after "", "settings"
    prop = schema.get("properties", {}).get(parts[0]) if parts else None
    title = prop.get("title") if isinstance(prop, Mapping) else None
    if not title:
        return at.lstrip("/")
    rest = "/".join(parts[1:])
    return f"'{title}'" + (f" ({rest})" if rest else "")


def _node_check_problems(document: Mapping[str, Any], nodes: list[_Node], problems: list[Problem]) -> None:
    """The node types' own checks, only on valid settings (their contract says so). A check
    points within its node (`/settings/gold`); here it becomes a document pointer, and the
    `Node '<id>'` its message starts with becomes the node's name."""
    for node in nodes:
        if node.cls is None or node.settings is None:
            continue
        for problem in node.cls.check(node.id, node.settings, document):
            message = problem.message.replace(f"Node {node.id!r}", node.name)
            problems.append(replace(problem, node_id=problem.node_id or node.id, message=message,
                                    pointer=node.pointer + problem.pointer))


# --------------------------------------------------------------------------- graph


def _entry_problems(nodes: list[_Node], problems: list[Problem]) -> list[_Node]:
    entries = [n for n in nodes if n.entry]
    if not entries:
        problems.append(
            Problem(
                "no_entry",
                "The campaign has no entry node: add a trigger that says who enters the campaign and when.",
                "/nodes",
            )
        )
    for extra in entries[1:]:
        problems.append(
            Problem(
                "several_entries",
                f"{extra.name} is another trigger; a campaign has exactly one "
                f"(the first is {entries[0].name}). Remove it or use a separate campaign.",
                extra.pointer,
                extra.id,
            )
        )
    return entries


def _edge_problems(document: Mapping[str, Any], by_id: Mapping[str, _Node], problems: list[Problem]) -> None:
    """Duplicate edge ids, dangling ends, ports the source lacks, edges into the entry, repeats."""
    seen_ids: set[str] = set()
    seen_links: set[tuple[str, str, str]] = set()
    for j, edge in enumerate(document["edges"]):
        if not isinstance(edge, Mapping):
            continue  # reported by the schema
        ident = edge.get("id")
        name = _edge_name(edge, by_id, j)
        if isinstance(ident, str):
            if ident in seen_ids:
                problems.append(
                    Problem("duplicate_edge_id", f"{name} shares its id with another connection; draw it again.",
                            f"/edges/{j}/id")
                )
            seen_ids.add(ident)
        source, target, port = edge.get("source"), edge.get("target"), edge.get("source_port", "out")
        for end, node_ref in (("source", source), ("target", target)):
            if isinstance(node_ref, str) and node_ref not in by_id:
                verb = "starts at" if end == "source" else "leads to"
                problems.append(
                    Problem(
                        "unknown_node",
                        f"A connection {verb} a node that is not on this canvas; delete it and connect again.",
                        f"/edges/{j}/{end}",
                    )
                )
        src = by_id.get(source) if isinstance(source, str) else None
        dst = by_id.get(target) if isinstance(target, str) else None
        if src is not None and isinstance(port, str):
            ports = src.ports()
            if ports is not None and port not in ports:
                problems.append(
                    Problem(
                        "unknown_port",
                        f"{src.name} has no port '{port}' any more (its ports: {', '.join(ports) or 'none'}): "
                        "connect one of them instead.",
                        f"/edges/{j}/source_port",
                        src.id,
                    )
                )
        if dst is not None and dst.entry:
            problems.append(
                Problem(
                    "edge_into_entry",
                    f"{name} leads into {dst.name}, the trigger; customers can only enter there by it.",
                    f"/edges/{j}/target",
                    dst.id,
                )
            )
        if isinstance(source, str) and isinstance(target, str) and isinstance(port, str):
            link = (source, port, target)
            if link in seen_links:
                problems.append(
                    Problem(
                        "duplicate_edge",
                        f"{name} is drawn twice; customers would arrive twice. Delete one.",
                        f"/edges/{j}",
                        source if src is not None else None,
                    )
                )
            seen_links.add(link)


def _reachability_problems(
    graph: nx.MultiDiGraph, by_id: Mapping[str, _Node], entries: list[_Node], problems: list[Problem]
) -> None:
    if not entries:
        return  # without an entry every node would be "unreachable": no_entry says it once
    reached: set[str] = set()
    for entry in entries:
        reached |= {entry.id} | nx.descendants(graph, entry.id)
    for node in by_id.values():
        if node.id not in reached:
            problems.append(
                Problem(
                    "unreachable",
                    f"{node.name} cannot be reached from the trigger {entries[0].name}: "
                    "no customer will ever get there. Connect it or remove it.",
                    node.pointer,
                    node.id,
                )
            )


def _cycle_problems(graph: nx.MultiDiGraph, by_id: Mapping[str, _Node], problems: list[Problem]) -> None:
    """Loops with no delay node, one problem per strongly connected region.

    Delay nodes (and nodes of unknown type, already reported) are removed first: whatever
    cycle remains is exactly a loop customers could go round within one run. Working per
    strongly connected component keeps this linear, where listing every simple cycle can
    explode on a dense graph.
    """
    simple = nx.DiGraph(graph)
    simple.remove_nodes_from([n for n, node in by_id.items() if node.cls is None or node.cls.delay])
    components = [c for c in nx.strongly_connected_components(simple) if len(c) > 1 or _self_loop(simple, c)]
    for component in sorted(components, key=lambda c: min(by_id[n].index for n in c)):
        first = min((by_id[n] for n in component), key=lambda n: n.index)
        loop = _shortest_loop(simple.subgraph(component), first.id)
        members = [n.id for n in sorted((by_id[n] for n in component), key=lambda n: n.index)]
        problems.append(
            Problem(
                "cycle_without_delay",
                f"Customers could loop forever without waiting: {_names(loop, ' → ', by_id)} "
                f"(nodes in the loop: {_names(members, ', ', by_id)}). Add a delay node, such as a wait, to the loop.",
                first.pointer,
                first.id,
            )
        )


def _shortest_loop(component: nx.DiGraph, start: str) -> list[str]:
    """The shortest loop from `start` back to itself (one BFS: linear in the component)."""
    paths = nx.single_source_shortest_path(component, start)
    back = min(component.predecessors(start), key=lambda p: (len(paths[p]), p))
    return [*paths[back], start] if back != start else [start, start]


def _names(ids: list[str], sep: str, by_id: Mapping[str, _Node], limit: int = 10) -> str:
    """Node names, shortened past `limit` so a huge loop stays a readable sentence."""
    shown = [by_id[i].name for i in ids[:limit]]
    if len(ids) > limit:
        shown.append(f"… ({len(ids) - limit} more)")
    return sep.join(shown)


def _self_loop(graph: nx.DiGraph, component: set[str]) -> bool:
    node = next(iter(component))
    return graph.has_edge(node, node)


def _edge_name(edge: Mapping[str, Any], by_id: Mapping[str, _Node], index: int) -> str:
    """'The connection from 'Filter customers' (yes) to 'Wait'', by the names of its ends."""
    source, target = edge.get("source"), edge.get("target")
    src = by_id.get(source) if isinstance(source, str) else None
    dst = by_id.get(target) if isinstance(target, str) else None
    if src is None or dst is None:
        return f"Connection #{index + 1}"
    port = edge.get("source_port", "out")
    return f"The connection from {src.name} ({port}) to {dst.name}"


def _unconnected_port_problems(
    document: Mapping[str, Any], by_id: Mapping[str, _Node], problems: list[Problem]
) -> None:
    """Ports with no edge are allowed (customers end there); worth a warning only where the
    node type does not call ending there normal (`end_ports`). Edges whose ends are not text
    are left out (reported by the schema; a list cannot be looked up)."""
    ends = [(e.get("source"), e.get("source_port", "out")) for e in document["edges"] if isinstance(e, Mapping)]
    used = {(source, port) for source, port in ends if isinstance(source, str) and isinstance(port, str)}
    for node in by_id.values():
        normal = node.cls.end_ports if node.cls is not None else frozenset()
        for port in node.ports() or []:
            if (node.id, port) not in used and port not in normal:
                problems.append(
                    Problem(
                        "unconnected_port",
                        f"{node.name}: nothing is connected to its '{port}' port, so customers leaving by it "
                        "end their journey there.",
                        node.pointer,
                        node.id,
                        WARNING,
                    )
                )


# --------------------------------------------------------------------------- bounded durations


def _too_long(text: str, longest: str) -> str | None:
    """The phrase for a duration text longer than `longest`; None when it is within (or not
    a duration at all: the schema's pattern says so)."""
    try:
        if parse_duration(text) <= parse_duration(longest):
            return None
    except ValueError:
        return None
    except OverflowError:
        pass  # longer than any date can take
    return _at_most(longest)


def _at_most(longest: str) -> str:
    return f"must be at most {describe_duration(parse_duration(longest))}"


def _duration_max(_validator: Any, longest: str, instance: Any, schema: Mapping[str, Any]) -> Iterable[ValidationError]:
    if isinstance(instance, str) and (phrase := _too_long(instance, longest)):
        yield ValidationError(_named(schema, phrase, repr(instance)))


def _duration_parts(_validator: Any, parts: Mapping[str, str], instance: Any, schema: Mapping[str, Any]
                    ) -> Iterable[ValidationError]:
    if not isinstance(instance, Mapping):
        return
    amount, unit = instance.get(parts["amount"]), instance.get(parts["unit"])
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not isinstance(unit, str):
        return  # the properties' own schemas report these
    try:
        finite = math.isfinite(amount)
    except OverflowError:  # an integer beyond any float
        finite = False
    phrase = _too_long(f"{amount}{unit}", parts["max"]) if finite else _at_most(parts["max"])
    if phrase:
        field = schema.get("properties", {}).get(parts["amount"], {})
        shown = f"{amount:g}" if finite else show(amount)
        yield ValidationError(_named(field, phrase, f"{shown} {unit}"), path=[parts["amount"]], instance=amount)


def _named(field: Mapping[str, Any], phrase: str, got: str) -> str:
    """The phrase with the field's title (what the settings form calls it) and the value."""
    title = field.get("title")
    return f"{phrase}: '{title}' is {got}" if title else f"{phrase} (got {got})"


#: JSON Schema 2020-12 with our duration keywords (every other `x-` keyword is an annotation)
_Validator = validators.extend(Draft202012Validator, {DURATION_MAX: _duration_max, DURATION_PARTS: _duration_parts})
