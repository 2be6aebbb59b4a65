"""The third-party node package in examples/custom_node, installed for real with pip and found
through the `campaign_canvas.nodes` entry point: the way any plugin reaches Campaign Canvas."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from engine.core import registry
from engine.core.validation import errors, validate_document
from tests.support import add_profiles, launch, points, stats

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "examples" / "custom_node"
CAMPAIGN = PACKAGE / "campaign.json"
DISTRIBUTION = "campaign-canvas-loyalty-tier"
TYPE = "loyalty_tier.split"


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        pytest.fail(
            f"pip {' '.join(args)} failed:\n{done.stderr[-3000:]}\nBuilding without build isolation uses "
            "this venv's setuptools, which needs the 'wheel' package below setuptools 70.1."
        )


@pytest.fixture(scope="module")
def plugin():
    """The package installed into this venv (not editable: it lands in site-packages and is
    importable here at once), discovered by the registry; all undone afterwards."""
    _pip("install", "--no-deps", "--no-build-isolation", "--quiet", "examples/custom_node")
    try:
        importlib.invalidate_caches()
        with registry.snapshot():
            registry.reload_plugins()
            yield registry.get(TYPE)
    finally:
        _pip("uninstall", "--quiet", "-y", DISTRIBUTION)
        sys.modules.pop("campaign_canvas_loyalty_tier", None)


def _document(split_settings: dict | None = None) -> dict:
    """examples/custom_node/campaign.json, optionally with other settings for the split."""
    document = json.loads(CAMPAIGN.read_text())
    if split_settings is not None:
        document["nodes"][1]["settings"] = split_settings
    return document


def test_the_node_type_comes_from_the_entry_point(plugin):
    (ep,) = metadata.entry_points(group=registry.ENTRY_POINT_GROUP, name="loyalty_tier")
    assert ep.dist is not None and ep.dist.name == DISTRIBUTION
    v1, v2, upgrade, holdout = ep.load()  # both versions, the migration between them, the holdout
    assert plugin is v2 and registry.get(TYPE, 1) is v1
    assert registry.get("loyalty_tier.holdout") is holdout and registry.has(holdout, "holdout")
    assert plugin.__module__ == "campaign_canvas_loyalty_tier"
    described = plugin.describe()
    assert described["ports"] == ["bronze", "silver", "gold"] and described["dynamic_ports"] is True
    assert (described["version"], described["versions"], described["upgrade_to"]) == (2, [1, 2], None)
    assert v1.describe()["upgrade_to"] == 2
    assert registry.upgrade_path(TYPE, 1) == [upgrade]
    assert plugin.category == "custom"


def test_campaign_through_the_plugin_node(plugin, harness):
    tiers = lambda i: (0, 99, 100, 399, 400, 1000)[i % 6]  # noqa: E731 - both sides of each threshold
    with harness.transaction() as s:
        ids = add_profiles(s, 60, points=tiers)
    cid = launch(harness, _document({"silver": 100, "gold": 400}))
    st = stats(harness, cid)
    assert st["everyone"]["entered"] == 60
    assert st["tiers"]["entered"] == 60
    assert st["tiers"]["left"] == {"bronze": 20, "silver": 20, "gold": 20}
    assert st["gold_bonus"]["entered"] == 20
    now = points(harness)
    for i, pid in enumerate(ids):
        assert now[pid] == tiers(i) + (10 if tiers(i) >= 400 else 0)


def test_defaults_apply_when_settings_are_empty(plugin, harness):
    with harness.transaction() as s:
        add_profiles(s, 6, points=lambda i: (0, 99, 100, 499, 500, 501)[i])
    cid = launch(harness, _document({}))  # silver 100, gold 500
    assert stats(harness, cid)["tiers"]["left"] == {"bronze": 2, "silver": 2, "gold": 2}


def test_simulate_from_the_command_line(plugin):
    script = Path(sys.executable).parent / "campaign-canvas"
    out = subprocess.run([str(script), "simulate", str(CAMPAIGN), "--profiles", "500"],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    nodes = json.loads(out.stdout)["nodes"]
    left = nodes["tiers"]["left"]
    assert nodes["tiers"]["entered"] == 500
    assert left.get("bronze", 0) + left.get("silver", 0) + left.get("gold", 0) == 500
    assert left.get("gold", 0) > 0  # generated points are in [0, 500); gold starts at 400 here
    assert nodes["gold_bonus"]["entered"] == left["gold"]


@pytest.mark.parametrize("gold", [100, 50])
def test_gold_must_be_above_silver(plugin, gold):
    problems = validate_document(_document({"silver": 100, "gold": gold}))
    (problem,) = errors(problems)
    assert (problem.code, problem.node_id) == ("tiers_out_of_order", "tiers")
    # check() points within the node; validation makes it a pointer into the document
    assert problem.pointer == "/nodes/1/settings/gold"
    assert "must be more than silver" in problem.message


def test_valid_example_has_no_errors(plugin):
    assert errors(validate_document(_document())) == []


def _versioned(version: int, split_settings: dict) -> dict:
    document = _document(split_settings)
    document["nodes"][1]["version"] = version
    return document


def test_version_2_adds_a_platinum_tier_and_its_port(plugin, harness):
    tiers = lambda i: (0, 150, 450, 1000, 5000)[i % 5]  # noqa: E731 - one customer per tier, each five times
    with harness.transaction() as s:
        add_profiles(s, 25, points=tiers)
    document = _versioned(2, {"silver": 100, "gold": 400, "platinum": 2000})
    document["edges"].append({"id": "e3", "source": "tiers", "source_port": "platinum", "target": "gold_bonus"})
    cid = launch(harness, document)
    assert stats(harness, cid)["tiers"]["left"] == {"bronze": 5, "silver": 5, "gold": 10, "platinum": 5}
    assert stats(harness, cid)["gold_bonus"]["entered"] == 15


def test_a_version_1_node_still_splits_in_three(plugin, harness):
    with harness.transaction() as s:
        add_profiles(s, 6, points=lambda i: (0, 99, 100, 499, 500, 5000)[i])
    cid = launch(harness, _versioned(1, {}))
    assert stats(harness, cid)["tiers"]["left"] == {"bronze": 2, "silver": 2, "gold": 2}


def test_the_migration_writes_version_1_defaults_out(plugin):
    assert registry.upgrade_settings(TYPE, 1, {"gold": 400}) == (2, {"silver": 100, "gold": 400})
    problems = validate_document(_versioned(2, {"silver": 100, "gold": 400, "platinum": 400}))
    (problem,) = errors(problems)
    assert (problem.code, problem.pointer) == ("tiers_out_of_order", "/nodes/1/settings/platinum")
