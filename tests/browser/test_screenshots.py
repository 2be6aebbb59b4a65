"""Pictures for reviewers (test-artifacts/screenshots/, see the README): the editor with a
running 12-node campaign and its live counts, and the campaigns page."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.canvas import open_editor


def twelve_nodes(event: str, audience_id: int) -> dict[str, Any]:
    def n(node_id: str, node_type: str, x: int, y: int, settings: dict[str, Any], label: str | None = None) -> dict:
        return {"id": node_id, "type": node_type, "settings": settings, "position": {"x": x, "y": y},
                **({"label": label} if label else {})}

    inapp = {"deliver_immediately": True}
    nodes = [
        n("signup", "event_trigger", 300, 0, {"event": event}, "Signed up"),
        n("cap", "limit", 300, 150, {"max": 10000}, "At most 10,000"),
        n("holdout", "control_group", 300, 300, {"percent": 10}, "10% hold-out"),
        n("vip", "filter", 300, 450,
          {"rules": {"match": "all", "rules": [{"field": "attributes.vip", "op": "eq", "value": True}]}}, "VIP?"),
        n("bonus", "award_points", 40, 620, {"points": 100}, "100 welcome points"),
        n("split", "ab_test", 560, 620, {"test_size": 100}, "Which greeting?"),
        n("hello_a", "send_inapp", 420, 800,
          {**inapp, "content": {"title": "Welcome, {{ profile.attributes.first_name }}"}}, "Greeting A"),
        n("hello_b", "send_inapp", 700, 800, {**inapp, "content": {"title": "Glad you are here"}}, "Greeting B"),
        n("together", "merge", 300, 980, {}),
        n("later", "wait", 300, 1130, {"amount": 2, "unit": "days"}, "Two days later"),
        n("onboard", "add_to_audience", 300, 1280, {"audience_id": audience_id}, "Onboarding audience"),
        n("thanks", "award_points", 300, 1430, {"points": 10}, "10 more points"),
    ]
    links = [("signup", "out", "cap"), ("cap", "out", "holdout"), ("holdout", "out", "vip"), ("vip", "yes", "bonus"),
             ("vip", "no", "split"), ("split", "a", "hello_a"), ("split", "b", "hello_b"), ("bonus", "out", "together"),
             ("hello_a", "sent", "together"), ("hello_b", "sent", "together"), ("together", "out", "later"),
             ("later", "out", "onboard"), ("onboard", "out", "thanks")]
    edges = [{"id": f"e{i}", "source": s, "source_port": p, "target": t} for i, (s, p, t) in enumerate(links)]
    return {"name": "Welcome journey (12 steps)", "tags": ["onboarding", "screenshot"], "nodes": nodes, "edges": edges,
            "goal": {"event": "purchase", "within": "7d"}}


def test_screenshots_of_the_editor_and_the_campaigns_page(page: Page, ui_server: Any, screenshots: Path) -> None:
    event = f"signup-{uuid.uuid4().hex[:6]}"
    audience = ui_server.api("/api/audiences", {"name": f"Onboarding {uuid.uuid4().hex[:6]}"})
    created = ui_server.api("/api/campaigns?launch=true", twelve_nodes(event, audience["id"]))
    customers = [{"email": f"c{i}-{uuid.uuid4().hex[:6]}@example.com", "attributes": {"vip": i % 4 == 0}}
                 for i in range(40)]
    ui_server.api("/api/profiles", {"profiles": customers})
    ui_server.api("/api/events/batch",
                  {"events": [{"event": event, "profile": {"email": c["email"]}} for c in customers]})

    open_editor(page, ui_server.url, created["id"])
    expect(page.locator("[data-testid=canvas-node]")).to_have_count(12)
    expect(page.locator("[data-node-id=signup] [data-testid=node-entered]")).to_have_text("40")
    expect(page.locator("[data-node-id=later] [data-testid=node-waiting]")).not_to_have_text("0")
    page.get_by_role("button", name="Fit", exact=True).click()
    page.wait_for_timeout(400)  # the fit animation
    page.screenshot(path=str(screenshots / "editor-12-nodes.png"))

    page.locator("[data-node-id=hello_a] [data-testid=node-label]").click()
    expect(page.get_by_test_id("settings-panel")).to_be_visible()
    page.screenshot(path=str(screenshots / "editor-settings.png"))

    page.goto(ui_server.url + "/")
    expect(page.get_by_test_id("campaigns-table")).to_be_visible()
    page.screenshot(path=str(screenshots / "campaigns.png"))
    for name in ("editor-12-nodes.png", "editor-settings.png", "campaigns.png"):
        assert (screenshots / name).stat().st_size > 10_000
