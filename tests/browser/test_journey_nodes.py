"""The journey node types in the palette with their settings forms, and the campaign
controls (send rate, frequency cap, transactional, exit rule) in the campaign panel, down to
the document the server stores."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.canvas import drop, expect_no_errors, field, open_editor, select

#: node types and where to drop them on the canvas (around the trigger, which the first fit
#: of the view centres)
JOURNEY_NODES = {
    "wait_for_event": (60, 120),
    "multi_split": (330, 120),
    "show_popup": (600, 120),
    "limit_poll": (60, 560),
    "accrue_bonus_points": (600, 560),
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def key_fields(schema: dict[str, Any]) -> list[str]:
    """The fields a form must show for it to be this type's: the required ones (else the first)."""
    return list(schema.get("required") or list(schema.get("properties", {}))[:1])


def test_journey_node_types_are_in_the_palette_and_their_forms_render(page: Page, ui_server: Any,
                                                                       screenshots: Path) -> None:
    declared = {decl["type"]: decl for decl in ui_server.api("/api/node-types")}
    open_editor(page, ui_server.url)
    for node_type in [*JOURNEY_NODES, "event_trigger"]:
        assert node_type in declared, f"the server declares no {node_type!r}"
        expect(page.locator(f"[data-testid=palette-item][data-node-type='{node_type}']")).to_have_count(1)

    panel = page.get_by_test_id("settings-panel")
    trigger = drop(page, "event_trigger", 560, 520)
    select(page, trigger)
    expect(panel.locator(".cc-node-id")).to_have_text(trigger)
    expect(field(page, "key_property")).to_have_count(1)
    for node_type, (x, y) in JOURNEY_NODES.items():
        node_id = drop(page, node_type, x, y)
        select(page, node_id)
        expect(panel.locator(".cc-node-id")).to_have_text(node_id)  # this node's form, not the last one's
        expect(panel.locator("form")).to_have_count(1)
        schema = declared[node_type]["schema"]
        for name in key_fields(schema):
            expect(field(page, name).first).to_be_visible()
        for name in schema.get("properties", {}):  # every top-level setting has its field
            expect(field(page, name)).not_to_have_count(0)
    page.screenshot(path=str(screenshots / "journey-nodes.png"))


def test_campaign_controls_are_stored_in_the_documents_settings(page: Page, ui_server: Any) -> None:
    segment = ui_server.api("/api/segments", {
        "name": unique("Still VIP"),
        "rules": {"match": "all", "rules": [{"field": "attributes.vip", "op": "eq", "value": True}]}})
    created = ui_server.api("/api/campaigns", {
        "name": unique("Controls"),
        "settings": {"timezone": "Europe/Paris"},
        "nodes": [
            {"id": "start", "type": "event_trigger", "settings": {"event": unique("evt")},
             "position": {"x": 0, "y": 0}},
            {"id": "points", "type": "award_points", "settings": {"points": 5}, "position": {"x": 0, "y": 200}},
        ],
        "edges": [{"id": "e1", "source": "start", "source_port": "out", "target": "points"}],
    })
    open_editor(page, ui_server.url, created["id"])
    expect(page.get_by_test_id("campaign-controls")).to_be_visible()

    page.get_by_test_id("campaign-send-rate").fill("500")
    page.get_by_test_id("campaign-cap-per").select_option("week")
    page.get_by_test_id("campaign-cap-messages").fill("3")
    page.get_by_test_id("campaign-exit").select_option("goal")  # the document has no goal: said by the goal
    expect(page.get_by_test_id("campaign-goal-problems")).to_contain_text("'goal' is required")
    page.get_by_test_id("campaign-exit").select_option("segment")  # no segment yet: said by the exit
    exit_problems = page.locator("[data-testid=campaign-controls] [data-pointer='/settings/exit']")
    expect(exit_problems).to_contain_text("segment_id")
    expect(page.get_by_test_id("campaign-goal-problems")).to_have_count(0)
    page.locator("#campaign-exit-segment").select_option(str(segment["id"]))
    expect_no_errors(page)
    save(page)
    wanted = {"timezone": "Europe/Paris", "send_rate_per_minute": 500,
              "frequency_cap": {"messages": 3, "per": "week"}, "exit": {"when": "segment", "segment_id": segment["id"]}}
    assert stored_settings(ui_server, created["id"]) == wanted

    page.get_by_test_id("campaign-send-rate").fill("")  # emptied: no limit, no key
    page.get_by_test_id("campaign-transactional").check()
    save(page)
    del wanted["send_rate_per_minute"]
    assert stored_settings(ui_server, created["id"]) == {**wanted, "transactional": True}

    page.reload()  # what was stored is what the panel shows
    expect(page.get_by_test_id("campaign-send-rate")).to_have_value("")
    expect(page.get_by_test_id("campaign-cap-messages")).to_have_value("3")
    expect(page.get_by_test_id("campaign-cap-per")).to_have_value("week")
    expect(page.get_by_test_id("campaign-transactional")).to_be_checked()
    expect(page.get_by_test_id("campaign-exit")).to_have_value("segment")
    expect(page.locator("#campaign-exit-segment")).to_have_value(str(segment["id"]))

    page.get_by_test_id("campaign-cap-messages").fill("")
    page.get_by_test_id("campaign-transactional").uncheck()
    page.get_by_test_id("campaign-exit").select_option("never")
    save(page)
    assert stored_settings(ui_server, created["id"]) == {"timezone": "Europe/Paris"}


def save(page: Page) -> None:
    expect_no_errors(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_test_id("editor-info")).to_contain_text("Saved as version")
    page.get_by_test_id("editor-info").get_by_role("button", name="dismiss").click()


def stored_settings(ui_server: Any, campaign_id: int) -> dict[str, Any]:
    return ui_server.api(f"/api/campaigns/{campaign_id}")["document"]["settings"]
