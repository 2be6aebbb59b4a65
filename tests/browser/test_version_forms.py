"""Versioned node types in the editor, with examples/custom_node (installed in the server under
test): `loyalty_tier.split` version 1 (bronze, silver, gold) and version 2 (an optional platinum
tier with its own port), and the migration from 1 to 2. A node saved on version 1 keeps
version 1's form and ports; the palette offers version 2; "Upgrade" moves a node to it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.canvas import drop, field, node, open_editor, select

SPLIT = "loyalty_tier.split"


def on_version_1(ui_server: Any) -> int:
    """A saved campaign whose split node is on version 1: everyone → split -(gold)→ points."""
    document = {
        "name": f"Tiers v1 {uuid.uuid4().hex[:6]}",
        "nodes": [
            {"id": "everyone", "type": "select_segment", "settings": {"source": "all"}, "position": {"x": 0, "y": 0}},
            {"id": "tiers", "type": SPLIT, "version": 1, "settings": {"silver": 100, "gold": 400},
             "position": {"x": 0, "y": 180}},
            {"id": "bonus", "type": "award_points", "settings": {"points": 10}, "position": {"x": 0, "y": 360}},
        ],
        "edges": [{"id": "e1", "source": "everyone", "source_port": "out", "target": "tiers"},
                  {"id": "e2", "source": "tiers", "source_port": "gold", "target": "bonus"}],
    }
    return ui_server.api("/api/campaigns", document)["id"]


def handles(page: Page, node_id: str) -> list[str]:
    found = page.locator(f".react-flow__handle.source[data-nodeid='{node_id}']")
    return [h.get_attribute("data-handleid") or "" for h in found.all()]


def test_an_old_version_node_keeps_its_form_and_the_palette_offers_the_newest(page: Page, ui_server: Any,
                                                                              screenshots: Path) -> None:
    campaign_id = on_version_1(ui_server)
    open_editor(page, ui_server.url, campaign_id)
    expect(node(page, "tiers").get_by_test_id("node-version")).to_have_text("v1")
    assert handles(page, "tiers") == ["bronze", "silver", "gold"]

    select(page, "tiers")
    note = page.get_by_test_id("node-version-note")
    expect(note).to_contain_text("Version 1 of this node type (the newest is 2)")
    expect(field(page, "silver")).to_have_value("100")
    expect(field(page, "gold")).to_have_value("400")
    expect(field(page, "platinum")).to_have_count(0)  # version 1's schema has no platinum tier
    field(page, "gold").fill("50")  # version 1's own check still answers, from the server
    expect(page.get_by_test_id("settings-problems")).to_contain_text("must be more than silver")
    field(page, "gold").fill("400")
    expect(page.get_by_test_id("problem-count")).to_contain_text("no errors")
    page.screenshot(path=screenshots / "node-version-old-form.png")

    item = page.locator(f"[data-testid=palette-item][data-node-type='{SPLIT}']")
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-node-version", "2")
    new = drop(page, SPLIT, 420, 200)
    expect(node(page, new).get_by_test_id("node-version")).to_have_count(0)  # on the newest: no mark
    expect(page.get_by_test_id("node-version-note")).to_have_count(0)
    field(page, "platinum").fill("2000")  # version 2's form, and its platinum port from the server
    expect(page.locator(f".react-flow__handle.source[data-nodeid='{new}'][data-handleid='platinum']")).to_have_count(1)


def test_upgrade_moves_a_node_to_the_newest_version_and_saving_keeps_it(page: Page, ui_server: Any) -> None:
    campaign_id = on_version_1(ui_server)
    open_editor(page, ui_server.url, campaign_id)
    select(page, "tiers")
    page.get_by_test_id("upgrade-node").click()

    expect(page.get_by_test_id("editor-info")).to_contain_text("Upgraded to version 2")
    expect(node(page, "tiers").get_by_test_id("node-version")).to_have_count(0)
    expect(page.get_by_test_id("node-version-note")).to_have_count(0)
    expect(field(page, "platinum")).to_have_count(1)
    expect(field(page, "gold")).to_have_value("400")
    expect(page.get_by_test_id("unsaved")).to_be_visible()
    expect(page.get_by_test_id("problem-count")).to_contain_text("no errors")

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_test_id("editor-info")).to_contain_text("Saved as version 2")
    stored = ui_server.api(f"/api/campaigns/{campaign_id}")["document"]
    tiers = next(n for n in stored["nodes"] if n["id"] == "tiers")
    assert (tiers["version"], tiers["settings"]) == (2, {"silver": 100, "gold": 400})
    assert {"id": "e2", "source": "tiers", "source_port": "gold", "target": "bonus"} in stored["edges"]
    first = ui_server.api(f"/api/campaigns/{campaign_id}/versions/1")["document"]
    assert next(n for n in first["nodes"] if n["id"] == "tiers")["version"] == 1, "history stays as it was"
