"""The campaign report (/campaigns/<id>/report) and the realtime page (/live) in a real
browser, against data made only through the public HTTP API of a real server: customers,
a launched campaign (trigger → control group → A/B test → two emails), events, emails
through a SendGrid stand-in and its delivery webhooks. What the page shows is compared with
what the report API answers."""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.report import (
    NONE,
    actions,
    console_errors,
    count,
    customers,
    edges,
    email,
    email_provider,
    full_page_screenshot,
    node,
    percent,
    points,
    post_events,
    report,
    sendgrid_events,
    tag,
    until,
)
from tests.standins import SendGridStandIn

XSS = "<img src=x onerror=alert(1)>"
WAIT = 20_000  # ms: the engine runs on a real clock
#: seconds the welcome campaign's A/B test waits for conversions before choosing
EVALUATION = 3.0


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as standin:
        yield standin


@pytest.fixture(scope="module")
def provider(ui_server: Any, sendgrid: SendGridStandIn) -> int:
    return email_provider(ui_server, sendgrid)


def welcome_campaign(t: str, provider: int) -> dict[str, Any]:
    return {
        "name": f"Report welcome {t}", "tags": ["report", t],
        "goal": {"event": f"purchase-{t}", "within": "7d"},
        "nodes": [
            node("start", "event_trigger", {"event": f"signup-{t}"}, 300, 0, "Signed up"),
            node("holdout", "control_group", {"mode": "count", "count": 3}, 300, 150, "Hold-out"),
            node("subject", "ab_test", {"variants": [{"id": "a", "name": "Plain"}, {"id": "b", "name": "Emoji"}],
                                        "test_size": 6, "metric": "conversions",
                                        "evaluation_period": f"{EVALUATION / 60}m"},
                 300, 300, "Subject test"),
            node("mail_a", "send_email", email(provider, "Welcome"), 100, 450, "Welcome A"),
            node("mail_b", "send_email", email(provider, "Welcome, friend"), 500, 450, "Welcome B"),
        ],
        "edges": edges(("start", "out", "holdout"), ("holdout", "out", "subject"), ("subject", "a", "mail_a"),
                       ("subject", "b", "mail_b")),
    }


def left(data: dict[str, Any], node_id: str, port: str) -> int:
    return next(n for n in data["nodes"] if n["id"] == node_id)["left"].get(port, 0)


def emails_of(server: Any, campaign_id: int, node_id: str, port: str) -> list[str]:
    return [a["email"] for a in actions(server, campaign_id, node=node_id, port=port, limit=500)["items"]]


def run_welcome_campaign(server: Any, sendgrid: SendGridStandIn, provider: int) -> tuple[int, dict[str, Any]]:
    """30 customers through the welcome campaign: 3 held out, 6 in the A/B test (variant b's
    three and one held-out customer buy), 21 after the test all sent variant b; their 27
    emails delivered, opened, clicked, bounced and unsubscribed through the webhook."""
    t = tag()
    cid = server.api("/api/campaigns?launch=true", welcome_campaign(t, provider))["id"]
    first = customers(server, f"rw{t}", 9)
    post_events(server, f"signup-{t}", first)
    until(lambda: sum(left(report(server, cid), "subject", v) for v in "ab") == 6,
          "the A/B test to split six customers")
    test_full = time.monotonic()  # the evaluation period (3 s) started before this

    buyers = emails_of(server, cid, "subject", "b") + emails_of(server, cid, "holdout", "control")[:1]
    assert len(buyers) == 4, buyers
    post_events(server, f"purchase-{t}", buyers)
    until(lambda: report(server, cid)["totals"]["converted"] == 4, "four conversions")

    # customers arriving once the evaluation period is over make the test decide at once (those
    # arriving during it would wait for a wakeup, which the engine rounds up to a minute)
    assert report(server, cid)["ab_tests"][0]["state"] == "evaluating"
    time.sleep(max(0.0, EVALUATION + 0.5 - (time.monotonic() - test_full)))
    later = customers(server, f"rw{t}", 21, start=9)
    post_events(server, f"signup-{t}", later)
    decided = until(lambda: (r := report(server, cid))["ab_tests"][0]["winner"] == "b" and left(r, "subject", "b") == 24
                    and r, "the A/B test to pick variant b and send it the 21 latecomers")
    assert decided["ab_tests"][0]["state"] == "decided"

    mine = set(first + later)
    sent = until(lambda: len(got := sorted((d for d in sendgrid.deliveries if d["to"] in mine),
                                           key=lambda d: int(d["custom_args"]["cc_outbox_id"]))) == 27 and got,
                 "27 emails at SendGrid")
    webhook = (sendgrid_events(sent[:25], "delivered") + sendgrid_events(sent[:10], "open")
               + sendgrid_events(sent[:4], "click", url="https://shop.example/welcome")
               + sendgrid_events(sent[5:6], "unsubscribe") + sendgrid_events(sent[-1:], "bounce", type="bounce"))
    server.sendgrid_webhook(webhook)

    def delivered() -> dict[str, Any] | None:
        r = report(server, cid)
        funnel = {k: sum(m["funnel"][k] for m in r["messages"]) for k in ("sent", "delivered", "opened", "clicked",
                                                                        "bounced", "unsubscribed")}
        want = {"sent": 27, "delivered": 25, "opened": 10, "clicked": 4, "bounced": 1, "unsubscribed": 1}
        return r if funnel == want and r["totals"]["sent"] == 27 else None

    return cid, until(delivered, "the delivery reports in the funnels")


def test_the_report_shows_what_the_api_answers(page: Page, ui_server: Any, sendgrid: SendGridStandIn, provider: int,
                                                screenshots: Path) -> None:
    cid, data = run_welcome_campaign(ui_server, sendgrid, provider)
    page.goto(f"{ui_server.url}/campaigns/{cid}/report")

    # header and cards
    expect(page.get_by_test_id("report-name")).to_have_text(data["campaign"]["name"])
    expect(page.get_by_test_id("report-status")).to_have_text("active")
    expect(page.get_by_test_id("report-goal")).to_contain_text(f"{data['goal']['event']} within 7d")
    expect(page.get_by_test_id("total-entered")).to_have_text("30")
    expect(page.get_by_test_id("total-converted")).to_have_text("4")
    expect(page.get_by_test_id("total-rate")).to_have_text(percent(data["totals"]["conversion_rate"]))
    expect(page.get_by_test_id("total-sent")).to_have_text("27")
    expect(page.get_by_test_id("report-editor-link")).to_have_attribute("href", f"/campaigns/{cid}")

    # every node with its counts
    rows = page.get_by_test_id("report-node-row")
    expect(rows).to_have_count(len(data["nodes"]))
    for n in data["nodes"]:
        row = page.locator(f"[data-testid=report-node-row][data-node-id='{n['id']}']")
        expect(row.get_by_test_id("node-entered")).to_have_text(count(n["entered"]))
        for port, left_by in n["left"].items():
            expect(row.locator(f"[data-testid=node-left][data-port='{port}']")).to_have_text(f"{port} {count(left_by)}")

    # delivery funnels: recharts bars that have a height, the rates beside them
    assert {m["node_id"] for m in data["messages"]} == {"mail_a", "mail_b"}
    for message in data["messages"]:
        funnel = page.locator(f"[data-testid=funnel-chart][data-node-id='{message['node_id']}']")
        bars = funnel.locator(".recharts-bar-rectangle path")
        expect(bars.first).to_be_visible()
        heights = [b["height"] for b in (bar.bounding_box() for bar in bars.all()) if b]
        assert sum(1 for h in heights if h > 1) >= 4, heights  # queued, sent, delivered, opened at least
        for name, value in message["rates"].items():
            expect(funnel.locator(f"[data-rate='{name}'] dd")).to_have_text(percent(value))

    # conversions over time: bars per bucket (no curve between buckets), hour and day buckets
    series = page.get_by_test_id("series-chart")
    expect(series).to_have_attribute("data-interval", data["series"]["interval"])
    expect(series.locator(".series-entered .recharts-bar-rectangle path").first).to_have_attribute(
        "d", re.compile(r"^M\s*[\d.]"))
    expect(series.locator(".recharts-area-curve, .recharts-line-curve")).to_have_count(0)
    page.get_by_test_id("interval-day").click()
    expect(series).to_have_attribute("data-interval", "day")
    assert "interval=day" in page.url
    day_points = len(report(ui_server, cid, interval="day")["series"]["points"])
    expect(series).to_have_attribute("data-points", str(day_points))
    page.get_by_test_id("interval-hour").click()
    expect(series).to_have_attribute("data-interval", "hour")

    # the A/B test: both variants, the winner named
    (ab,) = data["ab_tests"]
    chart = page.locator("[data-testid=ab-chart][data-node-id=subject]")
    expect(chart.get_by_test_id("ab-variant")).to_have_count(2)
    expect(chart.locator("[data-testid=ab-variant][data-variant-id=a] .variant-name")).to_have_text("Plain")
    expect(chart.locator("[data-testid=ab-variant][data-variant-id=b] .variant-name")).to_have_text("Emoji")
    winner = chart.get_by_test_id("ab-winner")
    expect(winner).to_have_attribute("data-variant-id", "b")
    expect(winner).to_contain_text("Emoji")
    ticks = chart.locator(".recharts-xAxis-tick-labels .recharts-cartesian-axis-tick-value")
    expect(ticks).to_have_count(2)
    assert [t.strip() for t in ticks.all_text_contents()] == ["Plain", "Emoji ★"]
    expect(chart.locator(".recharts-bar-rectangle path").first).to_be_visible()
    for variant in ab["variants"]:
        variant_row = chart.locator(f"[data-testid=ab-variant][data-variant-id='{variant['id']}']")
        expect(variant_row.get_by_test_id("ab-variant-rate")).to_have_text(percent(variant["conversion_rate"]))

    # the control group's uplift, as the API computed it
    (group,) = data["control_groups"]
    assert group["control"]["customers"] == 3 and group["treated"]["customers"] == 27
    uplift = page.locator("[data-testid=uplift][data-node-id=holdout]")
    expect(uplift.get_by_test_id("uplift-control-rate")).to_have_text(percent(group["control"]["rate"]))
    expect(uplift.get_by_test_id("uplift-treated-rate")).to_have_text(percent(group["treated"]["rate"]))
    lift = group["uplift"]
    expect(uplift.get_by_test_id("uplift-absolute")).to_have_text(points(lift["absolute"]))
    expect(uplift.get_by_test_id("uplift-ci")).to_have_text(f"{points(lift['ci_low'])} to {points(lift['ci_high'])}")
    expect(uplift.get_by_test_id("uplift-significant")).to_have_text(
        "Significant" if lift["significant"] else "Not significant")

    check_the_actions_table(page, ui_server, cid)

    page.get_by_test_id("actions-node").select_option("")
    expect(page.get_by_test_id("action-row")).to_have_count(50)
    full_page_screenshot(page, str(screenshots / "report.png"), "[data-testid=report-page]")
    assert (screenshots / "report.png").stat().st_size > 50_000
    assert console_errors(page) == []


def check_the_actions_table(page: Page, server: Any, cid: int) -> None:
    total = actions(server, cid)["total"]
    assert 100 < total <= 150, total  # three pages
    table, shown = page.get_by_test_id("actions-table"), page.get_by_test_id("actions-total")
    expect(shown).to_have_text(f"1–50 of {count(total)}")
    expect(table.get_by_test_id("action-row")).to_have_count(50)

    # keyset pages: older, older, newer
    newest_last = int(table.get_by_test_id("action-row").last.get_attribute("data-action-id") or 0)
    page.get_by_test_id("actions-older").click()
    expect(shown).to_have_text(f"51–100 of {count(total)}")
    assert int(table.get_by_test_id("action-row").first.get_attribute("data-action-id") or 0) < newest_last
    page.get_by_test_id("actions-older").click()
    expect(shown).to_have_text(f"101–{count(total)} of {count(total)}")
    expect(page.get_by_test_id("actions-older")).to_be_disabled()
    page.get_by_test_id("actions-newer").click()
    expect(shown).to_have_text(f"51–100 of {count(total)}")
    page.get_by_test_id("actions-newer").click()
    expect(shown).to_have_text(f"1–50 of {count(total)}")
    expect(page.get_by_test_id("actions-newer")).to_be_disabled()

    # filters: a node and a port, then a customer
    sent_b = actions(server, cid, node="mail_b", port="sent")
    page.get_by_test_id("actions-node").select_option("mail_b")
    page.get_by_test_id("actions-port").select_option("sent")
    expect(shown).to_have_text(f"1–{sent_b['total']} of {sent_b['total']}")
    expect(table.get_by_test_id("action-row")).to_have_count(sent_b["total"])
    expect(table.locator("td[data-column=node_label]").first).to_have_text("Welcome B")
    customer = sent_b["items"][0]["email"]
    page.get_by_test_id("actions-node").select_option("")
    page.get_by_test_id("actions-profile").fill(customer)
    theirs = actions(server, cid, profile=customer)["total"]
    expect(shown).to_have_text(f"1–{theirs} of {theirs}")
    for cell in table.locator("td[data-column=email]").all():
        expect(cell).to_have_text(customer)
    page.get_by_test_id("actions-profile").fill("")
    expect(shown).to_have_text(f"1–50 of {count(total)}")

    # columns: add the node id, drop the email; the choice outlives a reload
    page.locator("[data-testid=columns-menu] summary").click()
    page.locator("[data-testid=columns-menu] input[data-column=node_id]").check()
    page.locator("[data-testid=columns-menu] input[data-column=email]").uncheck()
    chosen = ["at", "profile_id", "node_id", "node_label", "port", "message_status"]
    headers = table.locator("thead th")
    expect(headers).to_have_count(len(chosen))
    assert [h.get_attribute("data-column") for h in headers.all()] == chosen
    page.reload()
    expect(page.get_by_test_id("report-name")).to_be_visible()
    expect(table.locator("thead th")).to_have_count(len(chosen))
    assert [h.get_attribute("data-column") for h in table.locator("thead th").all()] == chosen

    # the CSV: the filters and the columns of the page, every row (not just a page)
    page.get_by_test_id("actions-node").select_option("subject")
    subject = actions(server, cid, node="subject")
    expect(shown).to_have_text(f"1–{subject['total']} of {subject['total']}")
    link = page.get_by_test_id("actions-csv")
    expect(link).to_have_attribute("href", f"/api/campaigns/{cid}/report.csv?node=subject&columns={'%2C'.join(chosen)}")
    with page.expect_download() as info:
        link.click()
    with open(info.value.path(), newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert lines[0] == chosen
    assert len(lines) - 1 == subject["total"] == 27
    assert {line[chosen.index("node_id")] for line in lines[1:]} == {"subject"}
    assert {line[chosen.index("port")] for line in lines[1:]} == {"a", "b"}


def test_the_realtime_page_follows_running_campaigns(page: Page, ui_server: Any, provider: int,
                                                     screenshots: Path) -> None:
    t = tag()
    sender = ui_server.api("/api/campaigns?launch=true", {
        "name": f"Live sender {t}", "tags": ["live", t],
        "nodes": [node("start", "event_trigger", {"event": f"live-{t}"}, 0, 0, "Joined"),
                  node("mail", "send_email", email(provider, "Hello"), 0, 150, "Hello")],
        "edges": edges(("start", "out", "mail"))})
    other = ui_server.api("/api/campaigns?launch=true", {
        "name": f"Live waiting {t}", "tags": ["live"],
        "nodes": [node("start", "event_trigger", {"event": f"other-{t}"}, 0, 0),
                  node("wait", "wait", {"amount": 2, "unit": "days"}, 0, 150)],
        "edges": edges(("start", "out", "wait"))})

    scripts: list[str] = []
    page.on("request", lambda request: request.resource_type == "script" and scripts.append(request.url))
    page.get_by_test_id("nav-live").click()
    expect(page.get_by_test_id("live-table")).to_be_visible()
    assert page.url.endswith("/live")
    row = page.locator(f"[data-testid=live-row][data-campaign-id='{sender['id']}']")
    other_row = page.locator(f"[data-testid=live-row][data-campaign-id='{other['id']}']")
    expect(row.get_by_test_id("live-entered")).to_have_text("0")
    expect(other_row).to_be_visible()

    # events posted through the API: the counts move without a reload
    post_events(ui_server, f"live-{t}", customers(ui_server, f"lv{t}", 3))
    expect(row.get_by_test_id("live-entered")).to_have_text("3", timeout=WAIT)
    expect(row.get_by_test_id("live-sent")).to_have_text("3", timeout=WAIT)
    expect(row.get_by_test_id("live-converted")).to_have_text("0")
    post_events(ui_server, f"live-{t}", customers(ui_server, f"lv{t}", 2, start=3))
    expect(row.get_by_test_id("live-entered")).to_have_text("5", timeout=WAIT)

    # a campaign leaving the filter (active) goes; back in it, it comes back
    ui_server.api(f"/api/campaigns/{other['id']}/pause", {})
    expect(other_row).to_have_count(0, timeout=WAIT)
    ui_server.api(f"/api/campaigns/{other['id']}/resume", {})
    expect(other_row).to_have_count(1, timeout=WAIT)
    page.screenshot(path=str(screenshots / "live.png"))

    # by name
    page.get_by_test_id("live-search").fill(f"Live sender {t}")
    expect(page.get_by_test_id("live-row")).to_have_count(1)
    expect(row).to_be_visible()
    assert "q=Live+sender" in page.url

    # by status: paused only hides both
    page.get_by_test_id("live-search").fill(t)
    expect(page.get_by_test_id("live-row")).to_have_count(2)
    page.locator("[data-testid=status-filter] label.status-active input").uncheck()
    page.locator("[data-testid=status-filter] label.status-paused input").check()
    expect(page.get_by_test_id("live-row")).to_have_count(0)
    expect(page.get_by_test_id("live-empty")).to_be_visible()
    page.locator("[data-testid=status-filter] label.status-active input").check()
    expect(page.get_by_test_id("live-row")).to_have_count(2)

    # the name leads to the campaign's report, which follows the campaign live too; the
    # report's chunk (the chart library) comes with it, not before
    assert not [url for url in scripts if "/assets/ReportPage-" in url], scripts
    row.get_by_test_id("live-name").get_by_role("link").click()
    expect(page.get_by_test_id("report-name")).to_have_text(f"Live sender {t}")
    assert [url for url in scripts if "/assets/ReportPage-" in url], scripts
    expect(page.get_by_test_id("total-entered")).to_have_text("5")
    expect(page.get_by_test_id("funnel-chart")).to_have_count(1)
    expect(page.get_by_test_id("ab-chart")).to_have_count(0)  # no A/B node, no control group: no such section
    expect(page.get_by_test_id("uplift")).to_have_count(0)
    post_events(ui_server, f"live-{t}", customers(ui_server, f"lv{t}", 1, start=5))
    expect(page.get_by_test_id("total-entered")).to_have_text("6", timeout=WAIT)
    expect(page.locator("[data-testid=report-node-row][data-node-id=mail] [data-testid=node-entered]")
           ).to_have_text("6", timeout=WAIT)

    # the editor and the campaigns list link to the report
    page.get_by_test_id("report-editor-link").click()
    expect(page.get_by_test_id("editor")).to_be_visible()
    page.get_by_test_id("editor-report-link").click()
    expect(page.get_by_test_id("report-name")).to_have_text(f"Live sender {t}")
    page.get_by_test_id("nav-campaigns").click()
    listed = page.locator(f"[data-testid=campaign-row][data-campaign-id='{sender['id']}']")
    expect(listed.get_by_test_id("campaign-report-link")).to_have_attribute("href", f"/campaigns/{sender['id']}/report")
    assert console_errors(page) == []


def test_user_text_shows_as_text_and_an_empty_report_has_no_errors(page: Page, ui_server: Any, provider: int,
                                                                    screenshots: Path) -> None:
    t = tag()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    name = f"{XSS} empty {t}"
    cid = ui_server.api("/api/campaigns?launch=true", {
        "name": name, "goal": {"event": f"buy-{t}", "within": "1d"},
        "nodes": [node("start", "event_trigger", {"event": f"never-{t}"}, 0, 0, XSS),
                  node("holdout", "control_group", {"mode": "percent", "percent": 10}, 0, 150, XSS),
                  node("split", "ab_test", {"variants": [{"id": "a", "name": XSS}, {"id": "b"}], "test_size": 10},
                       0, 300, XSS),
                  node("mail", "send_email", email(provider, "Hi"), 0, 450, XSS)],
        "edges": edges(("start", "out", "holdout"), ("holdout", "out", "split"), ("split", "a", "mail"),
                       ("split", "b", "mail"))})["id"]
    data = report(ui_server, cid)
    assert data["totals"]["entered"] == 0 and data["series"]["points"] == []

    page.goto(f"{ui_server.url}/campaigns/{cid}/report")
    expect(page.get_by_test_id("report-name")).to_have_text(name)
    start = page.locator("[data-testid=report-node-row][data-node-id=start] .node-name")
    expect(start).to_have_text(XSS)
    expect(page.locator("[data-testid=funnel-chart] h3")).to_contain_text(XSS)
    expect(page.locator("[data-testid=ab-variant][data-variant-id=a] .variant-name")).to_have_text(XSS)
    expect(page.locator("[data-testid=report-page] img")).to_have_count(0)

    # nothing happened yet: zeros, dashes, empty charts
    expect(page.get_by_test_id("total-entered")).to_have_text("0")
    expect(page.get_by_test_id("total-rate")).to_have_text(NONE)
    expect(page.locator("[data-testid=funnel-rates] dd").first).to_have_text(NONE)
    expect(page.get_by_test_id("ab-winner")).to_have_count(0)
    expect(page.get_by_test_id("ab-state")).to_contain_text("Testing")
    expect(page.locator("[data-testid=uplift] [data-testid=uplift-control-rate]")).to_have_text(NONE)
    expect(page.locator("[data-testid=uplift] [data-testid=uplift-absolute]")).to_contain_text(NONE)
    expect(page.get_by_test_id("series-chart")).to_have_attribute("data-points", "0")
    expect(page.get_by_test_id("actions-total")).to_have_text("0 steps")
    expect(page.get_by_test_id("actions-table")).to_contain_text("No steps yet.")
    body = page.inner_text("body")
    assert "NaN" not in body and "Infinity" not in body
    page.wait_for_timeout(300)
    assert dialogs == []

    full_page_screenshot(page, str(screenshots / "report-empty.png"), "[data-testid=report-page]")

    # a campaign that never existed: a message, not a crash
    assert console_errors(page) == []
    page.goto(f"{ui_server.url}/campaigns/999999/report")
    expect(page.get_by_test_id("report-error")).to_contain_text("Could not load the report")
    assert console_errors(page, allow=("404",)) == []
