"""A campaign document as a graph the executor can walk.

Built once per campaign version from a document that already passed validation: node
instances with their settings (defaults filled in), the edges leaving each port, and an
order in which a batch can flow through the graph so that branches merge before the node
they meet at runs.

Each node is built from the version of its type that the document names (`version`; the
newest when absent), so registering a new version never changes a campaign already saved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from engine.core import registry
from engine.core.registry import NodeType


def with_defaults(schema: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings with the schema's top-level defaults filled in where absent."""
    filled = dict(settings)
    for name, prop in schema.get("properties", {}).items():
        if name not in filled and isinstance(prop, Mapping) and "default" in prop:
            filled[name] = prop["default"]
    return filled


def node_class(spec: Mapping[str, Any]) -> type[NodeType] | None:
    """The class of a document node: its type at its `version` (the newest when absent)."""
    version = spec.get("version")
    return registry.get(spec["type"], version if type(version) is int else None)


def label(node: Mapping[str, Any]) -> str:
    """What a node is called: its own label, else its type's (the type name for an unknown type)."""
    kind = node_class(node)
    return node.get("label") or (kind.label if kind else node["type"])


def instantiate(spec: Mapping[str, Any]) -> NodeType:
    """The node of a valid document as the executor runs it; KeyError when its type or its
    version is not installed (e.g. a plugin was removed after the campaign was saved)."""
    cls = node_class(spec)
    if cls is None:
        version = f" version {spec['version']}" if "version" in spec else ""
        raise KeyError(f"node {spec['id']!r}: node type {spec['type']!r}{version} is not installed")
    return cls(spec["id"], with_defaults(cls.schema, spec.get("settings", {})))


def entry_node(document: Mapping[str, Any]) -> NodeType:
    """Only the entry node of a valid document, for callers that need nothing else (event
    ingestion, the sweeper): building the whole graph there would be work per event."""
    for spec in document["nodes"]:
        cls = node_class(spec)
        if cls is not None and cls.entry:
            return instantiate(spec)
    raise KeyError("the campaign document has no entry node")


def to_networkx(document: Mapping[str, Any]) -> nx.MultiDiGraph:
    """Nodes keyed by id (attribute `type`), one edge per document edge (attribute `port`)."""
    graph = nx.MultiDiGraph()
    for node in document.get("nodes", []):
        if isinstance(node, Mapping) and isinstance(node.get("id"), str):
            graph.add_node(node["id"], type=node.get("type"))
    for edge in document.get("edges", []):
        if not isinstance(edge, Mapping):
            continue
        source, target, ident = edge.get("source"), edge.get("target"), edge.get("id")
        if isinstance(source, str) and isinstance(target, str) and source in graph and target in graph:
            # an id of another JSON type (reported by validation) may be unhashable
            graph.add_edge(source, target, key=ident if isinstance(ident, str) else None,
                           port=edge.get("source_port", "out"))
    return graph


@dataclass
class CampaignGraph:
    nodes: dict[str, NodeType]
    #: (node id, port) -> target node ids, in document order
    targets: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: node id -> position in the flow order (see `_flow_order`)
    order: dict[str, int] = field(default_factory=dict)
    entry: str = ""
    document: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, document: Mapping[str, Any]) -> CampaignGraph:
        nodes = {spec["id"]: instantiate(spec) for spec in document["nodes"]}
        targets: dict[tuple[str, str], list[str]] = defaultdict(list)
        for edge in document.get("edges", []):
            targets[(edge["source"], edge.get("source_port", "out"))].append(edge["target"])
        order = {node_id: i for i, node_id in enumerate(_flow_order(nodes, targets))}
        entry = next((n for n, node in nodes.items() if node.entry), "")
        return cls(nodes=nodes, targets=dict(targets), order=order, entry=entry, document=document)

    def targets_of(self, node_id: str, port: str) -> list[str]:
        return self.targets.get((node_id, port), [])


class GraphCache:
    """Versions are immutable, so a built graph can be kept as long as its database is used
    (one cache per runtime: version ids are only unique within one database)."""

    def __init__(self, size: int = 256):
        self._graphs: dict[int, CampaignGraph] = {}
        self._size = size

    def get(self, version_id: int, load_document: Callable[[], Mapping[str, Any]]) -> CampaignGraph:
        graph = self._graphs.get(version_id)
        if graph is None:
            if len(self._graphs) >= self._size:
                self._graphs.pop(next(iter(self._graphs)))
            graph = self._graphs[version_id] = CampaignGraph.build(load_document())
        return graph


def _flow_order(nodes: Mapping[str, NodeType], targets: Mapping[tuple[str, str], list[str]]) -> list[str]:
    """Nodes so that a batch reaches every node after all the branches that lead into it.

    Topological over the strongly connected components; inside a cycle (which validation
    guarantees passes through a delay node) the edges into delay nodes are cut.
    """
    full = nx.DiGraph()
    full.add_nodes_from(sorted(nodes))
    for (source, _port), dests in targets.items():
        full.add_edges_from((source, d) for d in dests)
    condensed = nx.condensation(full)
    order: list[str] = []
    for component in nx.lexicographical_topological_sort(condensed, key=lambda c: min(condensed.nodes[c]["members"])):
        members = condensed.nodes[component]["members"]
        if len(members) == 1:
            order.extend(members)
            continue
        inner = full.subgraph(members).copy()
        inner.remove_edges_from([(a, b) for a, b in list(inner.edges) if nodes[b].delay])
        order.extend(nx.lexicographical_topological_sort(inner))
    return order
