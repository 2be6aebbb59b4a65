"""The node SDK as an author meets it: one import, a registry that loads itself, capabilities
that give a plugin's node the built-ins' treatment, and the old paths still working."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import grimp
import networkx as nx
import pytest

from engine.core import registry
from engine.core.errors import RegistrationError
from engine.sdk import Batch, NodeType, Result
from tests.support import add_profiles, doc, launch, ok

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "custom_node"))
from campaign_canvas_loyalty_tier import LoyaltyHoldout  # noqa: E402


def _engine_imports(path: Path) -> set[str]:
    """Every engine module a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "engine"}


@pytest.mark.parametrize("folder", ["nodes", "examples/custom_node", "examples/attribute_split"])
def test_node_packages_import_only_the_sdk(folder):
    files = [p for p in (ROOT / folder).rglob("*.py") if "tests" not in p.parts and p.name not in
             ("conftest.py", "_schema.py")]
    assert files
    outside = {str(p.relative_to(ROOT)): sorted(m for m in _engine_imports(p)
                                                if m != "engine.sdk" and not m.startswith("engine.sdk."))
               for p in files}
    assert {f: m for f, m in outside.items() if m} == {}


def test_no_import_cycle_among_engine_and_nodes_modules():
    """grimp reads every import, in functions too; a strongly connected component of more
    than one module is a cycle."""
    graph = grimp.build_graph("engine", "nodes", include_external_packages=False)
    edges = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module, imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(edges) if len(c) > 1]
    assert cycles == []


def test_the_registry_loads_itself_in_a_fresh_process():
    """No `registry.load()` first: validation and simulation of built-in nodes just work."""
    code = ("from datetime import datetime\n"
            "from engine.sdk.testing import run\n"
            "doc = {'name': 'x', 'nodes': [{'id': 'a', 'type': 'select_segment', 'settings': {'source': 'all'}},"
            " {'id': 'b', 'type': 'award_points', 'settings': {'points': 1}}],"
            " 'edges': [{'id': 'e', 'source': 'a', 'source_port': 'out', 'target': 'b'}]}\n"
            "print(run(doc, [{}, {}]).entered('b'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "2"


def test_built_ins_come_from_the_entry_point_like_plugins():
    from importlib import metadata

    [builtin] = [ep for ep in metadata.entry_points(group=registry.ENTRY_POINT_GROUP) if ep.name == registry.BUILTIN]
    published = {cls.type for cls in builtin.load()}
    assert {"ab_test", "control_group", "segment_entry", "event_trigger", "send_email"} <= published
    assert published == {cls.type for cls in registry.all_types()} - _plugin_types()


def _plugin_types() -> set[str]:
    return {t for t in (c.type for c in registry.all_types()) if "." in t}


def test_a_plugin_holdout_shows_in_the_report_like_the_control_group(harness, api):
    with registry.snapshot():
        registry.register(LoyaltyHoldout)
        with harness.transaction() as session:
            add_profiles(session, 200)
        cid = launch(harness, doc(
            [("all", "select_segment", {"source": "all"}), ("hold", LoyaltyHoldout.type, {"percent": 25}),
             ("cg", "control_group", {"percent": 10}), ("done", "award_points", {"points": 1})],
            [("all", "out", "hold"), ("hold", "treated", "cg"), ("cg", "out", "done")]))
        report = ok(api.get(f"/api/campaigns/{cid}/report"))
    groups = {g["node_id"]: g for g in report["control_groups"]}
    assert set(groups) == {"hold", "cg"}
    held = groups["hold"]["control"]["customers"]
    assert held + groups["hold"]["treated"]["customers"] == 200
    assert 20 <= held <= 80
    assert groups["cg"]["treated"]["customers"] + groups["cg"]["control"]["customers"] == 200 - held
    hold_node = next(n for n in report["nodes"] if n["id"] == "hold")
    assert hold_node["summary"] == "25% held out" and hold_node["label"] == "Loyalty holdout"


def _router(**attrs) -> type[NodeType]:
    def process(self, batch: Batch) -> Result:
        return {"out": batch}
    return type("Plugin", (NodeType,), {"type": "acme.plugin", "label": "Plugin", "process": process, **attrs})


def test_a_capability_without_its_hook_is_refused_naming_the_hook():
    with registry.snapshot(), pytest.raises(RegistrationError, match=r"'experiment' capability.*experiment\(\)"):
        registry.register(_router(capabilities=frozenset({"experiment"})))


def test_an_unknown_capability_is_refused_listing_the_known_ones():
    with registry.snapshot(), pytest.raises(RegistrationError, match=r"unknown capability 'teleport'.*holdout"):
        registry.register(_router(capabilities=frozenset({"teleport"})))


def test_only_an_entry_node_can_be_an_event_entry():
    starts_on = classmethod(lambda cls, settings: "signup")
    with registry.snapshot(), pytest.raises(RegistrationError, match="only an entry node"):
        registry.register(_router(capabilities=frozenset({"event_entry"}), starts_on=starts_on))


@pytest.mark.parametrize("old, name", [("engine.registry", "NodeType"), ("engine.batch", "Batch"),
                                        ("engine.models", "Profile"), ("engine.validation", "Problem"),
                                        ("nodes._schema", "ref")])
def test_the_old_plugin_paths_still_import_with_a_warning(old, name):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = __import__(old, fromlist=[name])
        value = getattr(module, name)
    assert value is not None
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)


def test_the_core_and_the_sdk_name_no_built_in_node_type():
    """Node types tell the engine what they are: no type name is written into the core or
    the SDK (names that are plain words, like `limit`, are left out of the check)."""
    names = {cls.type for cls in registry.all_types() if "_" in cls.type}
    found = [f"{path.relative_to(ROOT)}:{node.lineno} {node.value}"
             for folder in ("engine/core", "engine/sdk") for path in (ROOT / folder).rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value in names]
    assert found == []
