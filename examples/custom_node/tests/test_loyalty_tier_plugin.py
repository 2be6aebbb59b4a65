"""The plugin's own tests, written as its author would: with engine.sdk.testing, which runs
a campaign on a virtual clock in a private database and counts customers per port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from campaign_canvas_loyalty_tier import NODE_TYPES, LoyaltyHoldout, LoyaltyTierSplit, LoyaltyTierSplitV1

from engine.sdk import Migration
from engine.sdk.testing import DocumentInvalid, registered, run

CAMPAIGN = json.loads((Path(__file__).resolve().parent.parent / "campaign.json").read_text())
TYPES = [item for item in NODE_TYPES if not isinstance(item, Migration)]


def _customers(*points: int) -> list[dict]:
    return [{"email": f"c{i}@example.com", "points": p} for i, p in enumerate(points)]


def test_customers_leave_by_their_tier():
    with registered(*TYPES):
        result = run(CAMPAIGN, _customers(0, 99, 100, 399, 400, 10_000))
    assert result.ports("tiers") == {"bronze": 2, "silver": 2, "gold": 2}
    assert result.entered("gold_bonus") == 2


def test_platinum_gets_its_own_port_when_set():
    document = json.loads(json.dumps(CAMPAIGN))
    document["nodes"][1]["settings"] = {"silver": 100, "gold": 400, "platinum": 1000}
    with registered(*TYPES):
        result = run(document, _customers(5, 150, 500, 1000, 5000))
    assert result.ports("tiers") == {"bronze": 1, "silver": 1, "gold": 1, "platinum": 2}


def test_version_1_nodes_keep_three_tiers():
    document = json.loads(json.dumps(CAMPAIGN))
    document["nodes"][1].update(version=1, settings={"silver": 100, "gold": 400})
    with registered(*TYPES):
        result = run(document, _customers(5, 150, 5000))
    assert result.ports("tiers") == {"bronze": 1, "silver": 1, "gold": 1}


def test_gold_below_silver_is_refused_naming_the_field():
    document = json.loads(json.dumps(CAMPAIGN))
    document["nodes"][1]["settings"] = {"silver": 500, "gold": 400}
    with registered(*TYPES), pytest.raises(DocumentInvalid) as refused:
        run(document, _customers(1))
    assert any(d.get("pointer") == "/nodes/1/settings/gold" for d in refused.value.details)


def test_the_holdout_keeps_about_its_share_out_and_always_the_same_customers():
    document = {
        "name": "Loyalty with a holdout",
        "nodes": [{"id": "all", "type": "select_segment", "settings": {"source": "all"}},
                  {"id": "holdout", "type": LoyaltyHoldout.type, "settings": {"percent": 20}}],
        "edges": [{"id": "e1", "source": "all", "source_port": "out", "target": "holdout"}],
    }
    customers = _customers(*range(1000))
    with registered(*TYPES):
        first = run(document, customers).ports("holdout")
        again = run(document, customers).ports("holdout")
    assert first == again
    assert first["held_out"] + first["treated"] == 1000
    assert 150 <= first["held_out"] <= 250


def test_the_migration_writes_version_1_defaults_out():
    step = next(item for item in NODE_TYPES if isinstance(item, Migration))
    assert step.apply({}) == {"silver": 100, "gold": 500}
    assert (LoyaltyTierSplitV1.version, LoyaltyTierSplit.version) == (1, 2)
