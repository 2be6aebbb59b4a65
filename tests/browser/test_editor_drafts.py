"""Never losing work, in a real Chromium against a real server: unsaved changes survive a
reload, leaving asks first (the browser on reload, the editor on every link), the first save
keeps the undo history and says so, and a half-built campaign saves as a draft."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Dialog, Page, expect

from tests.browser.canvas import connect, drop, expect_no_errors, field, node, node_ids, open_editor
from tests.browser.test_editor import campaign_id_of, chain, unique

NODES = "[data-testid=canvas-node]"


def accept_dialogs(page: Page) -> list[str]:
    """Accept every dialog the browser opens (leave the page: yes); their types, in order."""
    seen: list[str] = []

    def accept(dialog: Dialog) -> None:
        seen.append(dialog.type)
        dialog.accept()

    page.on("dialog", accept)
    return seen


def test_a_reload_of_an_unsaved_new_campaign_restores_it(page: Page, ui_server: Any, screenshots: Path) -> None:
    name = unique("Not saved yet")
    open_editor(page, ui_server.url)
    page.get_by_test_id("campaign-name-input").fill(name)
    trigger = drop(page, "event_trigger", 300, 120)
    points = drop(page, "award_points", 600, 380)
    expect(page.get_by_test_id("unsaved")).to_have_text("not saved yet")

    seen = accept_dialogs(page)
    page.reload()
    assert seen == ["beforeunload"], "the browser asks before a page with unsaved changes goes"
    expect(page.get_by_test_id("restored-notice")).to_contain_text("Restored your unsaved changes")
    expect(page.locator(NODES)).to_have_count(2)
    assert sorted(node_ids(page)) == sorted([trigger, points])
    expect(page.get_by_test_id("campaign-name-input")).to_have_value(name)
    assert "/campaigns/new" in page.url
    expect(page.get_by_test_id("problem-count")).to_contain_text("error")  # checked again, as drawn
    page.screenshot(path=str(screenshots / "editor-restored-draft.png"))

    # thrown away on request, and even that is one undo step
    page.get_by_test_id("discard-restored").click()
    expect(page.get_by_test_id("restored-notice")).to_have_count(0)
    expect(page.locator(NODES)).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(page.locator(NODES)).to_have_count(2)


def test_the_back_arrow_asks_before_leaving_unsaved_changes(page: Page, ui_server: Any, screenshots: Path) -> None:
    open_editor(page, ui_server.url)
    drop(page, "wait", 420, 200)
    page.locator(".cc-back").click()
    dialog = page.get_by_role("alertdialog", name="Leave without saving?")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("leave-stay")).to_be_focused()  # the answer that loses nothing
    page.screenshot(path=str(screenshots / "editor-leave-dialog.png"))

    # keyboard: Tab stays inside the dialog, Escape is "Stay"
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_test_id("leave-stay")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert page.url.endswith("/campaigns/new")
    expect(page.locator(NODES)).to_have_count(1)

    page.locator(".cc-back").click()
    page.get_by_test_id("leave-stay").click()
    expect(dialog).to_have_count(0)
    assert page.url.endswith("/campaigns/new")

    page.locator(".cc-back").click()
    page.get_by_role("button", name="Leave without saving").click()
    expect(page).to_have_url(ui_server.url + "/")
    open_editor(page, ui_server.url)  # chose to lose them: nothing is offered back
    expect(page.locator(NODES)).to_have_count(0)
    expect(page.get_by_test_id("restored-notice")).to_have_count(0)


def test_the_live_link_asks_before_leaving_a_running_campaign_with_changes(page: Page, ui_server: Any) -> None:
    created = ui_server.api("/api/campaigns?launch=true", chain(unique("Running"), unique("evt")))
    open_editor(page, ui_server.url, created["id"])
    expect(page.get_by_test_id("editor-status")).to_have_text("active")
    page.get_by_test_id("campaign-name-input").fill(unique("Renamed"))
    page.get_by_test_id("nav-live").click()
    expect(page.get_by_role("alertdialog", name="Leave without saving?")).to_be_visible()
    page.get_by_role("button", name="Stay").click()
    expect(page).to_have_url(re.compile(rf"/campaigns/{created['id']}$"))


    page.get_by_test_id("nav-live").click()
    page.get_by_role("button", name="Save and leave").click()
    expect(page).to_have_url(ui_server.url + "/live")
    stored = ui_server.api(f"/api/campaigns/{created['id']}")
    assert stored["name"].startswith("Renamed") and stored["version"] == 2


def test_the_browser_back_button_asks_too(page: Page, ui_server: Any) -> None:
    """Back and forward between the app's own pages change the URL before anyone is asked:
    the editor puts it back and asks."""
    created = ui_server.api("/api/campaigns?launch=true", chain(unique("Back button"), unique("evt")))
    open_editor(page, ui_server.url, created["id"])
    page.get_by_test_id("editor-report-link").click()
    expect(page).to_have_url(re.compile(r"/report$"))
    page.go_back()
    expect(page.get_by_test_id("editor")).to_be_visible()
    page.get_by_test_id("campaign-name-input").fill(unique("Renamed"))
    page.go_forward()
    expect(page.get_by_role("alertdialog", name="Leave without saving?")).to_be_visible()
    page.get_by_role("button", name="Stay").click()
    expect(page).to_have_url(re.compile(rf"/campaigns/{created['id']}$"))
    expect(page.get_by_test_id("unsaved")).to_be_visible()
    page.get_by_test_id("editor-report-link").click()  # and a link, again
    page.get_by_role("button", name="Leave without saving").click()
    expect(page).to_have_url(re.compile(r"/report$"))


def test_the_first_save_keeps_the_undo_history_and_says_saved(page: Page, ui_server: Any) -> None:
    open_editor(page, ui_server.url)
    page.get_by_test_id("campaign-name-input").fill(unique("First save"))
    trigger = drop(page, "event_trigger", 420, 120)
    field(page, "event").fill(unique("evt"))
    points = drop(page, "award_points", 420, 380)
    field(page, "points").fill("5")
    connect(page, trigger, "out", points)
    expect_no_errors(page)
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("editor-info")).to_contain_text("Saved as version 1")
    campaign_id = campaign_id_of(page)
    expect(page.get_by_test_id("unsaved")).to_have_count(0)

    page.locator(".react-flow__pane").click(position={"x": 700, "y": 500})  # focus on the canvas, not a field
    page.keyboard.press("Control+z")  # the last edit before saving: the connection
    expect(page.locator(".react-flow__edge")).to_have_count(0)
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    expect(page.locator(NODES)).to_have_count(1)  # and further back: the points node
    assert campaign_id_of(page) == campaign_id


def test_a_half_built_campaign_saves_as_a_draft_and_shows_its_problems(page: Page, ui_server: Any) -> None:
    open_editor(page, ui_server.url)
    page.get_by_test_id("campaign-name-input").fill(unique("Half built"))
    points = drop(page, "award_points", 420, 200)  # no trigger, no points: problems
    expect(page.get_by_test_id("problem-count")).to_contain_text("error")
    expect(page.get_by_role("button", name="Save and launch")).to_be_disabled()
    page.get_by_test_id("save").click()
    saved = re.compile(r"Saved as version 1, a draft with \d problems? to fix")
    expect(page.get_by_test_id("editor-info")).to_contain_text(saved)
    campaign_id = campaign_id_of(page)
    stored = ui_server.api(f"/api/campaigns/{campaign_id}")
    assert stored["status"] == "draft"
    assert {p["pointer"] for p in stored["problems"]} >= {"/nodes/0/settings/points"}

    seen = accept_dialogs(page)
    page.reload()  # saved: nothing to ask about, nothing to restore
    assert seen == []
    expect(page.get_by_test_id("restored-notice")).to_have_count(0)
    expect(node(page, points).get_by_test_id("node-problems")).to_contain_text("error")
    expect(page.get_by_role("button", name="Save and launch")).to_be_disabled()


def test_a_saved_draft_saves_itself(page: Page, ui_server: Any) -> None:
    created = ui_server.api("/api/campaigns", chain(unique("Autosaved"), unique("evt")))
    open_editor(page, ui_server.url, created["id"])
    drop(page, "wait", 700, 300)  # unreachable: an error, kept all the same
    expect(page.get_by_test_id("autosave")).to_contain_text("Draft saved (version 2)", timeout=10_000)
    stored = ui_server.api(f"/api/campaigns/{created['id']}")
    assert len(stored["document"]["nodes"]) == 4 and stored["problems"]
