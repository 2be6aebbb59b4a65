"""Settings forms generated from the node types' JSON Schemas: a custom node type's form,
ports that follow the settings, merge tags and a preview for a chosen customer."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.canvas import drop, field, node, open_editor


def test_a_node_type_registered_in_python_has_its_palette_entry_and_form(page: Page, ui_server: Any) -> None:
    """examples/custom_node is installed in the server under test; the UI knows nothing of it."""
    open_editor(page, ui_server.url)
    item = page.locator("[data-testid=palette-item][data-node-type='loyalty_tier.split']")
    expect(item).to_have_text("Split by loyalty tier")
    split = drop(page, "loyalty_tier.split", 420, 200)
    for port in ("bronze", "silver", "gold"):
        expect(page.locator(f".react-flow__handle.source[data-nodeid='{split}'][data-handleid='{port}']")).to_have_count(1)
    expect(field(page, "silver")).to_have_value("100")
    expect(field(page, "gold")).to_have_value("500")

    field(page, "gold").fill("50")  # the type's own check (gold above silver), from the server
    expect(page.get_by_test_id("settings-problems")).to_contain_text("must be more than silver")
    expect(node(page, split).get_by_test_id("node-problems")).to_be_visible()
    field(page, "silver").fill("-1")  # the schema's minimum, inline as typed
    expect(page.locator("[data-testid=settings-panel] [id='settings.silver__error']")).to_contain_text(">= 0")


def test_a_b_test_ports_follow_its_variants(page: Page, ui_server: Any) -> None:
    open_editor(page, ui_server.url)
    ab = drop(page, "ab_test", 420, 200)
    handles = page.locator(f".react-flow__handle.source[data-nodeid='{ab}']")
    expect(handles).to_have_count(2)
    page.locator("[data-testid=settings-panel] .btn-add").first.click()
    field(page, "variants.2.id").fill("c")
    expect(handles).to_have_count(3)
    expect(page.locator(f".react-flow__handle.source[data-nodeid='{ab}'][data-handleid='c']")).to_have_count(1)


def test_merge_tags_insert_at_the_cursor_and_the_preview_renders_for_a_customer(page: Page, ui_server: Any) -> None:
    email = f"ann-{uuid.uuid4().hex[:6]}@example.com"
    ui_server.api("/api/profiles", {"profiles": [{"email": email, "attributes": {"first_name": "Ann"}}]})
    open_editor(page, ui_server.url)
    drop(page, "send_sms", 420, 200)
    body = field(page, "content.body")
    body.fill("Hello !")
    body.press("End")
    body.press("ArrowLeft")  # the caret before "!"
    page.get_by_test_id("merge-tag").filter(has_text="first_name").click()
    expect(body).to_have_value("Hello {{ profile.attributes.first_name }}!")

    page.get_by_label("Preview customer").fill(email)
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_test_id("preview-result")).to_contain_text("Hello Ann!")
