"""Campaign document validation, on throwaway node types (no database, no built-in nodes).

Each error case is checked for its code, its JSON pointer and a message that names the node
or field, because that is what the canvas shows a marketer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from engine.core.errors import DocumentInvalid
from engine.core.registry import NodeType
from engine.core.validation import (
    Problem,
    ensure_valid,
    errors,
    format_problems,
    validate_document,
)


class Entry(NodeType):
    type = "t_entry"
    label = "Start"
    category = "trigger"
    entry = True

    def process(self, batch):
        return {"out": batch}


class Filter(NodeType):
    type = "t_filter"
    label = "Filter customers"
    category = "flow"
    ports = ("yes", "no")
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1},
            "rules": {
                "type": "array",
                "items": {"type": "object", "properties": {"op": {"enum": ["eq", "ne"]}}},
            },
        },
        "required": ["n"],
    }

    def process(self, batch):
        return {"yes": batch, "no": batch}


class Wait(NodeType):
    type = "t_wait"
    label = "Wait"
    category = "flow"
    delay = True
    schema = {"type": "object", "properties": {"days": {"type": "integer", "minimum": 1, "default": 1}}}

    def process(self, batch):
        return {"out": batch}


class Split(NodeType):
    type = "t_split"
    label = "A/B split"
    category = "flow"
    ports = ()
    schema = {
        "type": "object",
        "properties": {
            "variants": {"type": "array", "items": {"type": "string"}, "minItems": 1, "default": ["a", "b"]}
        },
    }

    @classmethod
    def ports_for(cls, settings: Mapping[str, Any]) -> list[str]:
        return list(settings["variants"])

    def process(self, batch):
        return {}


class Jump(NodeType):
    """Refers to another node by id: the kind of rule only `check` can enforce."""

    type = "t_jump"
    label = "Jump"
    category = "flow"
    schema = {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}

    @classmethod
    def check(cls, node_id, settings, document):
        ids = {n["id"] for n in document["nodes"]}
        if settings["to"] in ids:
            return []
        message = f"Node '{node_id}' jumps to '{settings['to']}', which does not exist."
        return [Problem("unknown_jump_target", message, "/settings/to")]

    def process(self, batch):
        return {"out": batch}


@pytest.fixture(autouse=True)
def types(isolated_registry):
    for cls in (Entry, Filter, Wait, Split, Jump):
        isolated_registry.register(cls)
    return isolated_registry


def node(node_id: str, type_name: str, **settings: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_name, "settings": settings, "position": {"x": 0, "y": 0}}


def edge(edge_id: str, source: str, target: str, port: str = "out") -> dict[str, Any]:
    return {"id": edge_id, "source": source, "source_port": port, "target": target}


def campaign(nodes: list, edges: list, **extra: Any) -> dict[str, Any]:
    return {"name": "Welcome", "description": "", "tags": [], "nodes": nodes, "edges": edges, **extra}


def valid() -> dict[str, Any]:
    """start -> f (yes -> w, no -> end) ; w -> s (a, b)."""
    return campaign(
        [node("start", "t_entry"), node("f", "t_filter", n=2), node("w", "t_wait", days=3), node("s", "t_split")],
        [edge("e1", "start", "f"), edge("e2", "f", "w", "yes"), edge("e3", "w", "s")],
        goal={"event": "purchase", "within": "7d"},
        settings={"timezone": "Europe/Paris"},
    )


def labelled(doc: dict[str, Any], **labels: str) -> dict[str, Any]:
    """The document with these nodes labelled as a marketer would (`f="VIP check"`)."""
    for n in doc["nodes"]:
        if n["id"] in labels:
            n["label"] = labels[n["id"]]
    return doc


def only(problems: list[Problem], code: str) -> Problem:
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, problems
    return found[0]


def codes(problems: list[Problem]) -> list[str]:
    return [p.code for p in errors(problems)]


# --------------------------------------------------------------------------- valid documents


def test_valid_document_has_no_errors():
    doc = valid()
    assert errors(validate_document(doc)) == []
    ensure_valid(doc)


def test_node_data_and_optional_fields_are_allowed():
    doc = valid()
    doc["nodes"][0].update(label="Signed up", version=1, data={"color": "green"})
    doc["edges"][0].pop("source_port")  # defaults to "out"
    del doc["nodes"][1]["position"], doc["nodes"][2]["settings"]
    assert errors(validate_document(doc)) == []


def test_empty_graph_is_valid_shape_but_has_no_entry():
    problems = validate_document(campaign([], []))
    assert codes(problems) == ["no_entry"]
    assert problems[0].pointer == "/nodes"


# --------------------------------------------------------------------------- (a) shape


def test_not_an_object_stops_after_the_shape():
    problems = validate_document(["nodes"])
    assert [(p.code, p.pointer) for p in problems] == [("invalid_field", "")]
    assert "must be an object" in problems[0].message


def test_nodes_not_a_list_stops_after_the_shape():
    problems = validate_document({"name": "x", "nodes": {}, "edges": []})
    assert [(p.code, p.pointer) for p in problems] == [("invalid_field", "/nodes")]
    assert "nodes" in problems[0].message and "must be a list" in problems[0].message


def test_shape_errors_name_the_field_and_node():
    doc = valid()
    doc["nodes"][1]["id"] = "bad id!"
    doc["edges"][1]["source"] = "bad id!"
    doc["nodes"][2]["colour"] = "red"
    del doc["name"]
    doc["goal"]["within"] = "a week"
    problems = validate_document(doc)
    by_pointer = {p.pointer: p for p in problems}

    bad_id = by_pointer["/nodes/1/id"]
    assert (bad_id.code, bad_id.node_id) == ("invalid_field", "bad id!")
    assert "Node 'Filter customers'" in bad_id.message and "id must be" in bad_id.message  # named by its type

    extra = by_pointer["/nodes/2/colour"]
    assert extra.code == "unknown_field" and "colour" in extra.message and extra.node_id == "w"

    assert by_pointer["/name"].code == "missing_field" and "'name'" in by_pointer["/name"].message
    within = by_pointer["/goal/within"]
    assert "goal/within" in within.message and "7d" in within.message


def test_edge_shape_error_names_the_edge():
    doc = valid()
    doc["edges"][0]["source_port"] = 3
    problem = next(p for p in validate_document(doc) if p.pointer == "/edges/0/source_port")
    assert problem.message == "Connection #1: source_port must be text."


# --------------------------------------------------------------------------- (b) duplicates


def test_duplicate_node_id():
    doc = valid()
    doc["nodes"].append({**node("f", "t_filter", n=1), "label": "Second check"})
    problem = only(validate_document(doc), "duplicate_node_id")
    assert (problem.pointer, problem.node_id) == ("/nodes/4/id", "f")
    assert "'Second check'" in problem.message and "'f'" not in problem.message


def test_duplicate_edge_id():
    doc = valid()
    doc["edges"][2]["id"] = "e1"
    problem = only(validate_document(doc), "duplicate_edge_id")
    assert problem.pointer == "/edges/2/id" and "'e1'" not in problem.message
    assert "from 'Wait' (out) to 'A/B split'" in problem.message


# --------------------------------------------------------------------------- (c) (d) types and settings


def test_unknown_type():
    doc = labelled(valid(), f="VIP check")
    doc["nodes"][1]["type"] = "t_filtr"
    problem = only(validate_document(doc), "unknown_type")
    assert (problem.pointer, problem.node_id) == ("/nodes/1/type", "f")
    assert "'VIP check'" in problem.message and "'t_filtr'" in problem.message and "t_filter" in problem.message


def test_invalid_settings_missing_required():
    doc = valid()
    doc["nodes"][1]["settings"] = {}
    problem = only(validate_document(doc), "invalid_settings")
    assert (problem.pointer, problem.node_id) == ("/nodes/1/settings/n", "f")
    assert problem.message == "'Filter customers': settings/n is required."


def test_invalid_settings_reports_each_error_with_nested_pointer():
    doc = valid()
    doc["nodes"][1]["settings"] = {"n": 0, "rules": [{"op": "eq"}, {"op": "like"}]}
    problems = [p for p in validate_document(doc) if p.code == "invalid_settings"]
    assert sorted(p.pointer for p in problems) == ["/nodes/1/settings/n", "/nodes/1/settings/rules/1/op"]
    op = next(p for p in problems if p.pointer.endswith("/op"))
    assert op.message == "'Filter customers': settings/rules/1/op must be one of eq, ne (got 'like')."


def test_settings_defaults_are_applied_before_checking():
    doc = valid()
    doc["nodes"][3]["settings"] = {}  # variants default to a, b
    doc["edges"].append(edge("e4", "s", "f", "b"))
    assert errors(validate_document(doc)) == []


# --------------------------------------------------------------------------- (e) entry


def test_no_entry():
    doc = valid()
    doc["nodes"][0]["type"] = "t_wait"
    problem = only(validate_document(doc), "no_entry")
    assert problem.pointer == "/nodes" and problem.node_id is None and "entry" in problem.message
    assert "unreachable" not in codes(validate_document(doc))


def test_several_entries_one_problem_per_extra():
    doc = labelled(valid(), start="Order placed")
    doc["nodes"] += [{**node("start2", "t_entry"), "label": "Signed up"}, node("start3", "t_entry")]
    problems = [p for p in validate_document(doc) if p.code == "several_entries"]
    assert [(p.pointer, p.node_id) for p in problems] == [("/nodes/4", "start2"), ("/nodes/5", "start3")]
    assert "'Signed up'" in problems[0].message and "'Order placed'" in problems[0].message
    assert "'Start'" in problems[1].message  # unlabelled: its type's label


# --------------------------------------------------------------------------- (f) edges


def test_edge_to_and_from_unknown_nodes():
    doc = valid()
    doc["edges"] += [edge("e4", "ghost", "f"), edge("e5", "f", "nowhere", "no")]
    problems = [p for p in validate_document(doc) if p.code == "unknown_node"]
    assert [p.pointer for p in problems] == ["/edges/3/source", "/edges/4/target"]
    assert all("not on this canvas" in p.message for p in problems)
    assert not any(word in p.message for p in problems for word in ("ghost", "nowhere", "e4"))


def test_unknown_static_port():
    doc = valid()
    doc["edges"][1]["source_port"] = "maybe"
    problem = only(validate_document(doc), "unknown_port")
    assert (problem.pointer, problem.node_id) == ("/edges/1/source_port", "f")
    assert "'maybe'" in problem.message and "yes, no" in problem.message and "Filter customers" in problem.message


def test_dynamic_ports_follow_the_settings():
    doc = valid()
    doc["edges"].append(edge("e4", "s", "f", "c"))
    problem = only(validate_document(doc), "unknown_port")
    assert (problem.pointer, problem.node_id) == ("/edges/3/source_port", "s")
    assert "a, b" in problem.message

    doc["nodes"][3]["settings"] = {"variants": ["a", "b", "c"]}
    assert "unknown_port" not in codes(validate_document(doc))


def test_ports_not_checked_when_settings_are_invalid():
    doc = valid()
    doc["nodes"][3]["settings"] = {"variants": []}
    doc["edges"].append(edge("e4", "s", "f", "c"))
    assert codes(validate_document(doc)) == ["invalid_settings"]


def test_edge_into_entry():
    doc = valid()
    doc["edges"].append(edge("e4", "f", "start", "no"))
    problem = only(validate_document(doc), "edge_into_entry")
    assert (problem.pointer, problem.node_id) == ("/edges/3/target", "start")
    assert "from 'Filter customers' (no) to 'Start'" in problem.message and "'e4'" not in problem.message


def test_duplicate_edge():
    doc = valid()
    doc["edges"].append(edge("e4", "f", "w", "yes"))
    problem = only(validate_document(doc), "duplicate_edge")
    assert (problem.pointer, problem.node_id) == ("/edges/3", "f")
    assert "from 'Filter customers' (yes) to 'Wait' is drawn twice" in problem.message


def test_same_target_from_two_ports_is_not_a_duplicate():
    doc = valid()
    doc["edges"].append(edge("e4", "f", "w", "no"))
    assert errors(validate_document(doc)) == []


# --------------------------------------------------------------------------- (g) reachability


def test_unreachable_node():
    doc = labelled(valid(), start="Order placed")
    doc["nodes"].append({**node("lost", "t_filter", n=1), "label": "Forgotten check"})
    doc["edges"].append(edge("e4", "lost", "w", "yes"))
    problem = only(validate_document(doc), "unreachable")
    assert (problem.pointer, problem.node_id) == ("/nodes/4", "lost")
    assert "'Forgotten check'" in problem.message and "'Order placed'" in problem.message


# --------------------------------------------------------------------------- (h) cycles


def test_cycle_through_a_delay_node_is_fine():
    doc = valid()
    doc["edges"].append(edge("e4", "s", "f", "a"))  # f -> w -> s -> f: w is a delay
    assert errors(validate_document(doc)) == []


def test_cycle_without_delay_is_reported_once():
    doc = labelled(valid(), f="F")
    doc["nodes"] += [{**node("g", "t_filter", n=1), "label": "G"}, {**node("h", "t_filter", n=1), "label": "H"}]
    doc["edges"] += [edge("e4", "f", "g", "no"), edge("e5", "g", "h", "yes"), edge("e6", "h", "f", "yes")]
    problem = only(validate_document(doc), "cycle_without_delay")
    assert (problem.pointer, problem.node_id) == ("/nodes/1", "f")
    assert "'F' → 'G' → 'H' → 'F'" in problem.message


def test_long_loop_is_named_briefly():
    doc = valid()
    doc["nodes"] += [{**node(f"n{i}", "t_filter", n=1), "label": f"n{i}"} for i in range(30)]
    doc["edges"] += [edge(f"x{i}", f"n{i}", f"n{(i + 1) % 30}", "yes") for i in range(30)]
    doc["edges"].append(edge("in", "f", "n0", "no"))
    problem = only(validate_document(doc), "cycle_without_delay")
    assert problem.node_id == "n0" and "(20 more)" in problem.message and "'n29'" not in problem.message


def test_loop_avoiding_the_delay_inside_a_region_with_one_is_reported():
    doc = labelled(valid(), w="Pause")
    doc["nodes"].append({**node("g", "t_filter", n=1), "label": "G"})
    # f -> w -> s -> f passes the delay; f -> g -> f does not
    doc["edges"] += [edge("e4", "s", "f", "a"), edge("e5", "f", "g", "no"), edge("e6", "g", "f", "yes")]
    problem = only(validate_document(doc), "cycle_without_delay")
    assert "'G'" in problem.message and "'Pause'" not in problem.message


def test_self_loop_without_delay():
    doc = valid()
    doc["edges"].append(edge("e4", "f", "f", "no"))
    problem = only(validate_document(doc), "cycle_without_delay")
    assert problem.node_id == "f" and "'Filter customers' → 'Filter customers'" in problem.message


# --------------------------------------------------------------------------- (i) unconnected ports


def test_unconnected_ports_are_warnings():
    problems = validate_document(valid())
    warnings = [p for p in problems if p.code == "unconnected_port"]
    assert [(p.node_id, p.pointer) for p in warnings] == [("f", "/nodes/1"), ("s", "/nodes/3"), ("s", "/nodes/3")]
    assert all(p.severity == "warning" for p in warnings)
    assert "'no'" in warnings[0].message and "Filter customers" in warnings[0].message
    assert errors(problems) == []


# --------------------------------------------------------------------------- (j) node type checks


def test_node_type_check_is_reported_with_the_node_id():
    doc = valid()
    doc["nodes"].append(node("j", "t_jump", to="nope"))
    doc["edges"].append(edge("e4", "f", "j", "no"))
    problem = only(validate_document(doc), "unknown_jump_target")
    assert problem.node_id == "j" and "'nope'" in problem.message
    assert problem.pointer == f"/nodes/{len(doc['nodes']) - 1}/settings/to"  # made a document pointer


def test_node_type_check_skipped_when_settings_are_invalid():
    doc = valid()
    doc["nodes"].append(node("j", "t_jump"))
    doc["edges"].append(edge("e4", "f", "j", "no"))
    assert codes(validate_document(doc)) == ["invalid_settings"]


# --------------------------------------------------------------------------- all at once, helpers


def test_reports_every_problem_at_once():
    doc = valid()
    doc["nodes"][2]["type"] = "t_nope"  # unknown type
    doc["nodes"][3]["settings"] = {"variants": "ab"}  # invalid settings
    doc["nodes"].append(node("f", "t_filter", n=1))  # duplicate id
    doc["nodes"].append(node("lost", "t_filter", n=1))  # unreachable
    doc["edges"].append(edge("e4", "f", "ghost", "no"))  # unknown node
    found = set(codes(validate_document(doc)))
    assert {"unknown_type", "invalid_settings", "duplicate_node_id", "unreachable", "unknown_node"} <= found


def test_ensure_valid_raises_with_every_error_as_details():
    doc = valid()
    doc["nodes"][1]["settings"] = {}
    doc["edges"][2]["id"] = "e1"
    with pytest.raises(DocumentInvalid) as info:
        ensure_valid(doc)
    assert info.value.message == "campaign document is invalid: 2 problems"
    assert [d["code"] for d in info.value.details] == ["invalid_settings", "duplicate_edge_id"]
    assert info.value.details[0] == {
        "code": "invalid_settings",
        "message": "'Filter customers': settings/n is required.",
        "pointer": "/nodes/1/settings/n",
        "node_id": "f",
        "severity": "error",
    }


def test_format_problems_one_line_each():
    problems = [
        Problem("invalid_settings", "Node 'w1' (Wait): settings/amount is required.", "/nodes/2/settings/amount", "w1"),
        Problem("no_entry", "The campaign has no entry node.", "/nodes"),
        Problem("unconnected_port", "port 'no' is free.", "/nodes/1", "f", "warning"),
    ]
    assert format_problems(problems).splitlines() == [
        "error  /nodes/2/settings/amount  node w1: Node 'w1' (Wait): settings/amount is required.",
        "error  /nodes  The campaign has no entry node.",
        "warning  /nodes/1  node f: port 'no' is free.",
    ]


def test_pointer_escapes_slash_and_tilde_in_keys():
    doc = valid()
    doc["nodes"][0]["a/b~c"] = 1
    problem = next(p for p in validate_document(doc) if p.code == "unknown_field")
    assert problem.pointer == "/nodes/0/a~1b~0c"
