"""The campaign editor in a real Chromium against a real server: what a marketer does with
the mouse and keyboard, and what the server stores afterwards."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.canvas import (
    connect,
    drop,
    edges,
    expect_no_errors,
    field,
    node,
    node_ids,
    open_editor,
    select,
)

XSS = "<img src=x onerror=alert(1)>"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def chain(name: str, event: str, *, label: str | None = None) -> dict[str, Any]:
    """event → filter (vip) → yes: points; a small campaign to open in the editor."""
    trigger: dict[str, Any] = {"id": "start", "type": "event_trigger", "settings": {"event": event},
                               "position": {"x": 0, "y": 0}}
    if label:
        trigger["label"] = label
    return {
        "name": name,
        "nodes": [
            trigger,
            {"id": "vip", "type": "filter", "position": {"x": 0, "y": 200},
             "settings": {"rules": {"match": "all",
                                    "rules": [{"field": "attributes.vip", "op": "eq", "value": True}]}}},
            {"id": "points", "type": "award_points", "settings": {"points": 7}, "position": {"x": 0, "y": 400}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "source_port": "out", "target": "vip"},
            {"id": "e2", "source": "vip", "source_port": "yes", "target": "points"},
        ],
    }


def campaign_id_of(page: Page) -> int:
    expect(page).to_have_url(re.compile(r"/campaigns/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


# ----------------------------------------------------------------------------- building


def test_a_campaign_is_built_from_an_empty_canvas_with_the_mouse_then_launched(page: Page, ui_server: Any) -> None:
    event, name = unique("signup"), unique("Signup points")
    open_editor(page, ui_server.url)
    page.get_by_test_id("campaign-name-input").fill(name)

    trigger = drop(page, "event_trigger", 420, 120)
    field(page, "event").fill(event)
    # below the first node, clear of it: the view fits (centres) the first node when it is
    # dropped, so a drop nearer the middle would land on it and hide its output handle
    points = drop(page, "award_points", 420, 600)
    field(page, "points").fill("5")
    connect(page, trigger, "out", points)
    expect(edges(page)).to_have_count(1)
    expect_no_errors(page)

    page.get_by_role("button", name="Save and launch").click()
    expect(page.get_by_test_id("editor-status")).to_have_text("active")
    campaign_id = campaign_id_of(page)
    stored = ui_server.api(f"/api/campaigns/{campaign_id}")
    assert stored["status"] == "active" and stored["name"] == name
    by_type = {n["type"]: n for n in stored["document"]["nodes"]}
    assert by_type["event_trigger"]["settings"]["event"] == event
    assert by_type["award_points"]["settings"]["points"] == 5
    stored_edges = stored["document"]["edges"]
    assert [(e["source"], e["source_port"], e["target"]) for e in stored_edges] == [(trigger, "out", points)]

    page.reload()
    expect(page.locator("[data-testid=canvas-node]")).to_have_count(2)
    expect(edges(page)).to_have_count(1)
    expect(page.get_by_test_id("campaign-name-input")).to_have_value(name)
    expect(node(page, trigger).get_by_test_id("node-label")).to_have_text("Event")
    select(page, points)
    expect(field(page, "points")).to_have_value("5")


def test_a_node_is_placed_by_clicking_the_palette_then_the_canvas(page: Page, ui_server: Any) -> None:
    open_editor(page, ui_server.url)
    page.locator("[data-testid=palette-item][data-node-type=wait]").click()
    page.locator(".react-flow__pane").click(position={"x": 500, "y": 300})
    expect(page.locator("[data-testid=canvas-node][data-node-type=wait]")).to_have_count(1)


def test_errors_are_shown_on_their_node_and_launching_waits_for_them(page: Page, ui_server: Any) -> None:
    open_editor(page, ui_server.url)
    page.get_by_test_id("campaign-name-input").fill(unique("Half-written"))
    points = drop(page, "award_points", 420, 200)  # no trigger, no points: two problems
    expect(node(page, points).get_by_test_id("node-problems")).to_contain_text("error")
    expect(page.get_by_test_id("problem-count")).to_contain_text("error")
    expect(page.get_by_role("button", name="Save and launch")).to_be_disabled()
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_enabled()  # a draft saves half-built
    expect(page.locator("[data-testid=settings-panel] .error-detail")).not_to_have_count(0)  # inline, at once

    field(page, "points").fill("3")
    trigger = drop(page, "event_trigger", 420, 40)
    field(page, "event").fill(unique("event"))
    connect(page, trigger, "out", points)
    expect_no_errors(page)
    page.get_by_role("button", name="Save", exact=True).click()  # saving keeps it a draft
    expect(page.get_by_test_id("editor-status")).to_have_text("draft")
    assert ui_server.api(f"/api/campaigns/{campaign_id_of(page)}")["status"] == "draft"
    expect(page.get_by_role("button", name="Save and launch")).to_be_enabled()


def test_handles_refuse_connections_the_server_would_refuse(page: Page, ui_server: Any) -> None:
    created = ui_server.api("/api/campaigns", chain(unique("Refuse"), unique("evt")))
    open_editor(page, ui_server.url, created["id"])
    expect(page.locator(".react-flow__handle.target[data-nodeid='start']")).to_have_count(0)  # nothing to drop on
    connect(page, "vip", "no", "points")  # allowed: both branches lead to the points
    expect(edges(page)).to_have_count(3)
    connect(page, "points", "out", "vip")  # refused: a loop with no wait in it
    connect(page, "vip", "no", "points")  # refused: already connected
    page.wait_for_timeout(300)
    expect(edges(page)).to_have_count(3)


def test_a_deleted_node_comes_back_with_undo_and_goes_again_with_redo(page: Page, ui_server: Any) -> None:
    created = ui_server.api("/api/campaigns", chain(unique("Undo"), unique("evt")))
    open_editor(page, ui_server.url, created["id"])
    expect(edges(page)).to_have_count(2)
    select(page, "vip")
    page.keyboard.press("Delete")
    expect(page.locator("[data-testid=canvas-node]")).to_have_count(2)
    expect(edges(page)).to_have_count(0)

    page.keyboard.press("Control+z")
    expect(page.locator("[data-testid=canvas-node]")).to_have_count(3)
    expect(edges(page)).to_have_count(2)
    page.keyboard.press("Control+Shift+z")
    expect(node(page, "vip")).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(node(page, "vip")).to_have_count(1)


# ----------------------------------------------------------------------------- copy and paste


def test_two_connected_nodes_copied_in_one_tab_paste_into_another_tabs_editor(context: BrowserContext, page: Page,
                                                                           ui_server: Any) -> None:
    created = ui_server.api("/api/campaigns", chain(unique("Source"), unique("evt")))
    open_editor(page, ui_server.url, created["id"])
    select(page, "start")
    select(page, "vip", add=True)
    page.keyboard.press("Control+c")
    expect(page.get_by_test_id("editor-info")).to_contain_text("Copied 2 nodes")

    other = context.new_page()
    open_editor(other, ui_server.url)
    other.locator(".react-flow__pane").click(position={"x": 300, "y": 200})
    other.keyboard.press("Control+v")
    expect(other.locator("[data-testid=canvas-node]")).to_have_count(2)
    expect(edges(other)).to_have_count(1)
    pasted = node_ids(other)
    assert not set(pasted) & {"start", "vip", "points"}  # new ids

    other.get_by_test_id("campaign-name-input").fill(unique("Pasted"))
    expect_no_errors(other)
    other.get_by_role("button", name="Save", exact=True).click()
    expect(other.get_by_test_id("editor-status")).to_have_text("draft")
    stored = ui_server.api(f"/api/campaigns/{campaign_id_of(other)}")["document"]
    by_type = {n["type"]: n for n in stored["nodes"]}
    assert by_type["event_trigger"]["settings"]["event"] == created["document"]["nodes"][0]["settings"]["event"]
    assert by_type["filter"]["settings"]["rules"]["rules"][0]["field"] == "attributes.vip"
    (edge,) = stored["edges"]
    assert (edge["source"], edge["source_port"], edge["target"]) == (by_type["event_trigger"]["id"], "out",
                                                                     by_type["filter"]["id"])


EMPTY_PASTE = ("() => document.dispatchEvent(new ClipboardEvent('paste', "
               "{clipboardData: new DataTransfer(), bubbles: true}))")


def test_paste_uses_the_copy_kept_between_tabs_when_the_clipboard_gives_nothing(context: BrowserContext, page: Page,
                                                                               ui_server: Any) -> None:
    created = ui_server.api("/api/campaigns", chain(unique("Source"), unique("evt")))
    open_editor(page, ui_server.url, created["id"])
    select(page, "points")
    page.get_by_role("button", name="Copy").click()  # no clipboard event at all: the button

    other = context.new_page()
    open_editor(other, ui_server.url)
    expect(other.get_by_role("button", name="Paste")).to_be_enabled()
    other.evaluate(EMPTY_PASTE)
    expect(other.locator("[data-testid=canvas-node][data-node-type=award_points]")).to_have_count(1)


def test_a_paste_with_an_unknown_node_type_pastes_nothing(page: Page, ui_server: Any) -> None:
    open_editor(page, ui_server.url)
    page.evaluate("""() => localStorage.setItem('campaign-canvas:clipboard', JSON.stringify({
        format: 'campaign-canvas/fragment', version: 1, edges: [],
        nodes: [{id: 'a', type: 'award_points', settings: {points: 1}, position: {x: 0, y: 0}},
                {id: 'b', type: 'no_such_type', settings: {}, position: {x: 0, y: 100}}]}))""")
    page.evaluate(EMPTY_PASTE)
    expect(page.get_by_test_id("editor-error")).to_contain_text("no_such_type")
    expect(page.locator("[data-testid=canvas-node]")).to_have_count(0)


# ----------------------------------------------------------------------------- live and safe


def test_a_nodes_counter_rises_as_events_arrive(page: Page, ui_server: Any) -> None:
    event = unique("visit")
    created = ui_server.api("/api/campaigns?launch=true", chain(unique("Live"), event))
    open_editor(page, ui_server.url, created["id"])
    entered = node(page, "start").get_by_test_id("node-entered")
    expect(entered).to_have_text("0")

    ui_server.api("/api/events", {"event": event, "profile": {"email": f"{uuid.uuid4().hex}@example.com"}})
    expect(entered).to_have_text("1")
    ui_server.api("/api/events/batch", {"events": [
        {"event": event, "profile": {"email": f"{uuid.uuid4().hex}@example.com"}} for _ in range(2)]})
    expect(entered).to_have_text("3")
    expect(node(page, "vip").get_by_test_id("node-entered")).to_have_text("3")
    expect(page.locator("[data-testid=edge-count][data-edge-id=e1]")).to_have_text("3")


def test_user_text_shows_as_text_never_as_html(page: Page, ui_server: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    created = ui_server.api("/api/campaigns", chain(XSS, unique("evt"), label=XSS))
    open_editor(page, ui_server.url, created["id"])
    expect(node(page, "start").get_by_test_id("node-label")).to_have_text(XSS)
    expect(page.get_by_test_id("campaign-name-input")).to_have_value(XSS)
    page.goto(f"{ui_server.url}/")  # the list, newest first
    expect(page.get_by_test_id("campaign-name").filter(has_text=XSS).first).to_be_visible()
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []
