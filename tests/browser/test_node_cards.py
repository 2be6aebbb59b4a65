"""Node cards as a marketer reads them, in a real Chromium against a real server: each card
says what its node does (the server's summary, with the names of templates), an A/B test's
ports carry its variants' names, a port shows its full name on hover, a complete journey is
quiet, and a problem in the list takes the marketer to the node and the field to fix.
Screenshots of the cards go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.canvas import connect, drop, expect_no_errors, field, node, open_editor, select


def journey(event: str, template_id: int) -> dict[str, Any]:
    """Ordered (once a week at most) → an A/B test of two emails → did the first one get opened?"""
    def n(node_id: str, node_type: str, x: int, y: int, settings: dict[str, Any]) -> dict[str, Any]:
        return {"id": node_id, "type": node_type, "settings": settings, "position": {"x": x, "y": y}}

    nodes = [
        n("start", "event_trigger", 300, 0, {"event": event, "frequency": "period", "period": "7d"}),
        n("ab", "ab_test", 300, 170, {"variants": [{"id": "a", "name": "Short subject"},
                                                   {"id": "b", "name": "Long subject"}], "metric": "clicks"}),
        n("mail_a", "send_email", 60, 360, {"template_id": template_id}),
        n("mail_b", "send_email", 560, 360, {"content": {"subject": "Our spring sale starts today, with a gift",
                                                         "text": "Come and see"}}),
        n("status", "check_email_status", 60, 560, {"email_node": "mail_a"}),
    ]
    links = [("start", "out", "ab"), ("ab", "a", "mail_a"), ("ab", "b", "mail_b"), ("mail_a", "sent", "status")]
    return {"name": f"Spring sale {event}", "nodes": nodes,
            "edges": [{"id": f"e{i}", "source": s, "source_port": p, "target": t} for i, (s, p, t) in enumerate(links)]}


def summary(page: Page, node_id: str) -> Any:
    return node(page, node_id).get_by_test_id("node-summary")


def expect_quiet(page: Page) -> None:
    """No error, no warning: the count says so and no problem is listed."""
    expect_no_errors(page)
    expect(page.get_by_test_id("problem-count")).to_have_text("no errors")
    expect(page.get_by_test_id("problems-list")).to_have_count(0)


def test_cards_summarise_their_nodes_and_a_problem_leads_to_its_field(
        page: Page, ui_server: Any, screenshots: Path) -> None:
    event = f"order-{uuid.uuid4().hex[:6]}"
    template = ui_server.api("/api/templates", {"channel": "email", "name": f"Spring sale {event}",
                                                "content": {"subject": "Hi", "text": "Hello"}})
    created = ui_server.api("/api/campaigns", journey(event, template["id"]))
    open_editor(page, ui_server.url, created["id"])

    # each card says what its node does, in words, never an id
    expect(summary(page, "start")).to_have_text(f"{event} — once per week")
    expect(summary(page, "ab")).to_have_text("2 variants, 1,000 in the test, winner by clicks after 1 day")
    expect(summary(page, "mail_a")).to_have_text(f"Template: Spring sale {event}")
    expect(summary(page, "mail_b")).to_have_text("“Our spring sale starts today, with…”")
    expect(summary(page, "status")).to_have_text("Email: Send email")  # the email it checks, by its label

    # the A/B test's ports are its variants' names
    expect(node(page, "ab").get_by_test_id("port-label")).to_have_text(["Short subject", "Long subject"])

    # a port shows its full name on hover, not "ope… click…"
    port = node(page, "status").locator("[data-port=delivered_not_opened]")
    port.hover()
    expect(port).to_have_attribute("title", "delivered not opened")
    label = port.get_by_test_id("port-label")
    expect(label).to_have_text("delivered not opened")
    assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the port's name is cut"

    # the journey as saved is complete: unconnected sends and statuses are normal ends, no warning
    expect_quiet(page)

    # a wait at the end is worth a warning; a step after it makes the journey complete again
    wait = drop(page, "wait", 560, 560)
    field(page, "amount").fill("2")
    expect(summary(page, wait)).to_have_text("2 days")
    connect(page, "status", "delivered_not_opened", wait)
    expect(page.get_by_test_id("problem-count")).to_have_text("no errors, 1 warning")
    expect(page.get_by_test_id("problem")).to_have_text(
        ["'Wait': nothing is connected to its 'out' port, so customers leaving by it end their journey there."])
    points = drop(page, "award_points", 600, 290)
    field(page, "points").fill("10")
    expect(summary(page, points)).to_have_text("+10 points")
    connect(page, wait, "out", points)
    expect_quiet(page)

    page.get_by_role("button", name="Fit", exact=True).click()
    page.wait_for_timeout(400)  # the fit animation
    page.screenshot(path=str(screenshots / "node-cards.png"))
    node(page, "ab").screenshot(path=str(screenshots / "node-card-ab-test.png"))
    node(page, "status").screenshot(path=str(screenshots / "node-card-email-status.png"))

    # choosing conversions without a goal is an error; clicking it selects the node and its field
    select(page, "ab")
    field(page, "metric").select_option("conversions")
    problem = page.get_by_test_id("problem").filter(has_text="the winner is chosen by conversions")
    expect(problem).to_have_text("'A/B test': the winner is chosen by conversions, so the campaign needs a goal: "
                                 "set one in the campaign's settings, or choose opens or clicks.")
    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})  # nothing selected
    expect(page.get_by_test_id("settings-panel")).to_have_count(0)
    problem.click()
    expect(node(page, "ab")).to_have_class(re.compile(r"\bselected\b"))
    expect(page.get_by_test_id("settings-panel").locator("h3")).to_have_text("A/B test")
    expect(field(page, "metric")).to_be_focused()
    page.screenshot(path=str(screenshots / "node-cards-problem.png"))
    for name in ("node-cards.png", "node-card-ab-test.png", "node-card-email-status.png", "node-cards-problem.png"):
        assert (screenshots / name).stat().st_size > 2_000
