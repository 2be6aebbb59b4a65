"""The report in the marketer's words, a time series that invents no trend, and canvas nodes
that keep their size when live counters appear: a real browser against a real server, the
data made through the public HTTP API only.

The campaign's node ids are random-looking (`n_...`), as the editor makes them, so that an id
leaking onto the page is caught by looking for it in the page's text; the type keys
(`event_trigger`...) are looked for the same way.
"""

from __future__ import annotations

import csv
import re
import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.canvas import node as canvas_node
from tests.browser.canvas import open_editor
from tests.browser.report import (
    console_errors,
    customers,
    edges,
    email,
    email_provider,
    full_page_screenshot,
    node,
    post_events,
    report,
    tag,
    until,
)
from tests.standins import SendGridStandIn

WAIT = 20_000  # ms: the engine runs on a real clock
#: type key -> the palette's name for it (engine registry labels)
PALETTE = {"event_trigger": "Event", "control_group": "Control group", "ab_test": "A/B test",
           "send_email": "Send email", "wait": "Wait"}


def node_id() -> str:
    """An id as the editor makes one: nothing a marketer could read."""
    return "n_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as standin:
        yield standin


@pytest.fixture(scope="module")
def provider(ui_server: Any, sendgrid: SendGridStandIn) -> int:
    return email_provider(ui_server, sendgrid)


@pytest.fixture(scope="module")
def campaign(ui_server: Any, provider: int, sendgrid: SendGridStandIn) -> dict[str, Any]:
    """Ten customers through trigger → control group → A/B test → two unlabelled emails, two
    of them converting; the campaign's ids and the report the API answers for it."""
    t = tag()
    ids = {key: node_id() for key in ("start", "holdout", "split", "mail_a", "mail_b")}
    document = {
        "name": f"Words {t}", "goal": {"event": f"bought-{t}", "within": "7d"},
        "nodes": [
            node(ids["start"], "event_trigger", {"event": f"joined-{t}"}, 300, 0, "Joined the club"),
            node(ids["holdout"], "control_group", {"mode": "count", "count": 2}, 300, 160),
            node(ids["split"], "ab_test", {"variants": [{"id": "a", "name": "Short subject"},
                                                        {"id": "b", "name": "Long subject"}],
                                           "test_size": 4, "metric": "conversions", "evaluation_period": "1d"},
                 300, 320, "Subject line test"),
            node(ids["mail_a"], "send_email", email(provider, "Welcome"), 100, 480),
            node(ids["mail_b"], "send_email", email(provider, "Welcome, friend"), 500, 480),
        ],
        "edges": edges((ids["start"], "out", ids["holdout"]), (ids["holdout"], "out", ids["split"]),
                       (ids["split"], "a", ids["mail_a"]), (ids["split"], "b", ids["mail_b"])),
    }
    cid = ui_server.api("/api/campaigns?launch=true", document)["id"]
    people = customers(ui_server, f"ww{t}", 10)
    post_events(ui_server, f"joined-{t}", people)
    until(lambda: report(ui_server, cid)["totals"]["sent"] == 4, "four emails sent")
    post_events(ui_server, f"bought-{t}", people[:2])
    data = until(lambda: (r := report(ui_server, cid))["totals"]["converted"] == 2 and r, "two conversions")
    return {"id": cid, "ids": ids, "report": data}


def raw_words(campaign: dict[str, Any]) -> list[str]:
    """What must never show: the campaign's node ids and its nodes' type keys."""
    return [*campaign["ids"].values(), *{n["type"] for n in campaign["report"]["nodes"]}]


def visible_text(page: Page) -> str:
    """Everything a marketer can read on the page: its text, the options of every list,
    tooltips (title) and what screen readers say (aria-label)."""
    options = page.locator("option").all_text_contents()
    attributes = page.eval_on_selector_all(
        "[title], [aria-label]", "els => els.flatMap(e => [e.title || '', e.getAttribute('aria-label') || ''])")
    return "\n".join([page.inner_text("body"), *options, *attributes])


def test_the_report_speaks_in_labels_and_palette_names(page: Page, ui_server: Any, campaign: dict[str, Any],
                                                       screenshots: Path) -> None:
    cid, ids, data = campaign["id"], campaign["ids"], campaign["report"]
    assert {n["id"]: n["type_label"] for n in data["nodes"]} == {
        ids["start"]: "Event", ids["holdout"]: "Control group", ids["split"]: "A/B test",
        ids["mail_a"]: "Send email", ids["mail_b"]: "Send email"}
    page.goto(f"{ui_server.url}/campaigns/{cid}/report")
    expect(page.get_by_test_id("total-entered")).to_have_text("10")
    expect(page.get_by_test_id("funnel-chart")).to_have_count(2)
    expect(page.get_by_test_id("action-row").first).to_be_visible()

    # the steps table: each node by its label (else its type's palette name), its type by the palette's name
    expected = {ids["start"]: ("Joined the club", "Event"), ids["holdout"]: ("Control group", "Control group"),
                ids["split"]: ("Subject line test", "A/B test"), ids["mail_a"]: ("Send email", "Send email"),
                ids["mail_b"]: ("Send email", "Send email")}
    for nid, (name, kind) in expected.items():
        row = page.locator(f"[data-testid=report-node-row][data-node-id='{nid}']")
        expect(row.locator(".node-name")).to_have_text(name)
        expect(row.get_by_test_id("node-type")).to_have_text(kind)
    for chart in page.get_by_test_id("funnel-chart").all():
        expect(chart.locator("h3")).to_have_text("Send email")
    expect(page.locator("[data-testid=ab-chart] h3")).to_contain_text("Subject line test")
    expect(page.locator("[data-testid=uplift] h3")).to_have_text("Control group")

    # the step filter: names, two "Send email" told apart by a number, never an id
    options = page.get_by_test_id("actions-node").locator("option")
    assert options.all_text_contents() == ["All steps", "Joined the club", "Control group", "Subject line test",
                                           "Send email (1)", "Send email (2)"]
    page.get_by_test_id("actions-node").select_option(label="Send email (2)")
    sent_b = next(n for n in data["nodes"] if n["id"] == ids["mail_b"])["entered"]
    assert sent_b > 0
    expect(page.get_by_test_id("actions-total")).to_have_text(f"1–{sent_b} of {sent_b}")

    # the step type column, chosen from the menu, in the palette's words
    page.locator("[data-testid=columns-menu] summary").click()
    page.locator("[data-testid=columns-menu] input[data-column=node_type_label]").check()
    page.locator("[data-testid=columns-menu] summary").click()
    cells = page.locator("[data-testid=action-row] td[data-column=node_type_label]")
    expect(cells).to_have_count(sent_b)
    assert set(cells.all_text_contents()) == {"Send email"}
    page.get_by_test_id("actions-node").select_option("")
    expect(page.get_by_test_id("action-row").first).to_be_visible()

    text = visible_text(page)
    leaked = [word for word in raw_words(campaign) if word.lower() in text.lower()]
    assert not leaked, f"ids or type keys on the page: {leaked}"

    # the CSV the page offers: the page's columns, names and not ids
    with page.expect_download() as info:
        page.get_by_test_id("actions-csv").click()
    with open(info.value.path(), newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert "node_type_label" in lines[0] and "node_id" not in lines[0] and len(lines) > 1
    exported = "\n".join(",".join(line) for line in lines[1:])
    assert not [word for word in raw_words(campaign) if word in exported]
    assert {line[lines[0].index("node_type_label")] for line in lines[1:]} <= set(PALETTE.values())

    full_page_screenshot(page, str(screenshots / "report-words.png"), "[data-testid=report-page]")
    assert (screenshots / "report-words.png").stat().st_size > 30_000
    assert console_errors(page) == []


def bar_heights(series: Locator, which: str) -> list[float]:
    """The heights of the bars recharts drew for one series (a bucket of 0 draws none)."""
    boxes = (bar.bounding_box() for bar in series.locator(f".series-{which} .recharts-bar-rectangle path").all())
    return [box["height"] for box in boxes if box and box["height"] > 0]


@pytest.mark.parametrize("interval", ["hour", "day"])
def test_the_series_is_bars_in_the_buckets_with_data_and_no_ramp(page: Page, ui_server: Any,
                                                                 campaign: dict[str, Any], interval: str) -> None:
    cid = campaign["id"]
    points = report(ui_server, cid, interval=interval)["series"]["points"]
    assert sum(p["entered"] for p in points) == 10
    page.goto(f"{ui_server.url}/campaigns/{cid}/report?interval={interval}")
    series = page.get_by_test_id("series-chart")
    expect(series).to_have_attribute("data-interval", interval)
    expect(series).to_have_attribute("data-points", str(len(points)))
    expect(series.locator(".series-entered .recharts-bar-rectangle path").first).to_be_visible()

    # no line or area between buckets: nothing rises from a bucket before the first one
    curves = ".recharts-area-curve, .recharts-line-curve, .recharts-area, .recharts-line"
    expect(series.locator(curves)).to_have_count(0)
    assert len(bar_heights(series, "entered")) == sum(1 for p in points if p["entered"] > 0)
    assert len(bar_heights(series, "converted")) == sum(1 for p in points if p["converted"] > 0)
    ticks = series.locator(".recharts-xAxis-tick-labels .recharts-cartesian-axis-tick-value")
    expect(ticks).to_have_count(len(points))

    # the axes and the tooltip in plain words
    unit = "Hour" if interval == "hour" else "Day"
    expect(series.locator(".recharts-label").filter(has_text=f"{unit} starting (UTC)")).to_have_count(1)
    expect(series.locator(".recharts-label").filter(has_text="Customers")).to_have_count(1)
    first = next(p for p in points if p["entered"] > 0)
    series.locator(".series-entered .recharts-bar-rectangle path").first.hover()
    tooltip = series.get_by_test_id("series-tooltip")
    expect(tooltip).to_contain_text(f"{first['entered']} customers entered")
    expect(tooltip).to_contain_text(f"{first['converted']} customers converted")
    # an hour says where it starts and ends, a day its date with the year
    expect(tooltip.locator(".series-tooltip-when")).to_have_text(re.compile(r" – " if interval == "hour" else r"\d{4}"))
    assert console_errors(page) == []


def test_a_node_keeps_its_size_when_live_counters_appear(page: Page, ui_server: Any, screenshots: Path) -> None:
    """Nodes placed by hand close together: launching the campaign shows the counters, and
    every node's box stays exactly as it was (the counters' room was there before)."""
    t = tag()
    ids = [node_id() for _ in range(4)]
    draft = ui_server.api("/api/campaigns", {
        "name": f"Steady nodes {t}",
        "nodes": [node(ids[0], "event_trigger", {"event": f"steady-{t}"}, 0, 0, "Signed up"),
                  node(ids[1], "control_group", {"mode": "count", "count": 1}, 0, 150, "Hold one back"),
                  node(ids[2], "wait", {"amount": 2, "unit": "days"}, 0, 300),
                  node(ids[3], "wait", {"amount": 1, "unit": "days"}, 240, 300, "A day later")],
        "edges": edges((ids[0], "out", ids[1]), (ids[1], "out", ids[2]), (ids[1], "control", ids[3]))})
    open_editor(page, ui_server.url, draft["id"])
    for nid in ids:
        expect(canvas_node(page, nid)).to_be_visible()
    expect(page.get_by_test_id("node-stats")).to_have_count(0)
    # each card's summary line comes with the first check of the draft: measure after it
    expect(page.get_by_test_id("node-summary")).to_have_count(len(ids), timeout=WAIT)
    page.wait_for_timeout(300)  # the first fit of the view
    before = measure(page, ids)

    ui_server.api(f"/api/campaigns/{draft['id']}/launch", {})
    post_events(ui_server, f"steady-{t}", customers(ui_server, f"sn{t}", 3))
    expect(page.get_by_test_id("node-stats")).to_have_count(4, timeout=WAIT)
    expect(canvas_node(page, ids[0]).get_by_test_id("node-entered")).to_have_text("3", timeout=WAIT)
    expect(canvas_node(page, ids[2]).get_by_test_id("node-waiting")).to_have_text("2", timeout=WAIT)
    expect(canvas_node(page, ids[1]).locator("[data-port=control] [data-testid=port-count]")).to_have_text("1")
    after = measure(page, ids)

    assert {n: b["offset_height"] for n, b in after.items()} == {n: b["offset_height"] for n, b in before.items()}
    for nid in ids:
        assert abs(after[nid]["height"] - before[nid]["height"]) < 0.5, (nid, before[nid], after[nid])
        assert abs(after[nid]["y"] - before[nid]["y"]) < 0.5, "the view did not move either"
    boxes = list(after.values())
    overlapping = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if overlap(a, b)]
    assert not overlapping, overlapping

    box = canvas_node(page, ids[1]).bounding_box()
    assert box is not None
    page.screenshot(path=str(screenshots / "node-with-counters.png"),
                    clip={"x": box["x"] - 40, "y": box["y"] - 40, "width": box["width"] + 320,
                          "height": box["height"] * 3})
    assert console_errors(page) == []


def measure(page: Page, ids: list[str]) -> dict[str, dict[str, float]]:
    """Each node's box on the screen and its height in CSS pixels (whatever the zoom)."""
    found = {}
    for nid in ids:
        located = canvas_node(page, nid)
        box = located.bounding_box()
        assert box is not None, nid
        found[nid] = {**box, "offset_height": located.evaluate("el => el.offsetHeight")}
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]
