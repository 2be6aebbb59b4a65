"""Reports, end to end on SQLite and PostgreSQL with a real Redis and a SendGrid stand-in.

One campaign with known outcomes: 150 sign-ups in two waves, a control group holding out the
first 80, an A/B test of two emails on 40 customers decided by conversions after a day, the
remaining 30 sent the winner, fixed purchase events and fixed webhook statuses. Every figure
of the report is checked exactly: node counts, each email's funnel and rates, the A/B scores
and winner, the control group uplift and its interval, the hourly and daily series, the
action table and its CSV.

The group sizes and conversions (56 of 70 treated, 48 of 80 held out) are example (a) of
Newcombe (1998), "Interval estimation for the difference between independent proportions",
Statistics in Medicine 17:873-890, whose method 10 gives 0.2 with the 95% interval 0.0524 to
0.3339: the uplift interval is checked against the paper, not against our own arithmetic.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from engine.core.models import Enrollment, JourneyStep, OutboxMessage
from engine.journeys.report import Outcome, uplift, wilson
from tests.support import (
    TickingClock,
    WebhookKeys,
    add_profiles,
    doc,
    email_provider,
    error_of,
    ok,
    sendgrid_event,
)

DAY1 = datetime(2026, 12, 1, 8, 0)  # the harness clock's start
EMAIL = {"subject": "Hi {{ profile.attributes.first_name }}", "html": "<p>Offer</p>", "text": "Offer"}


@pytest.fixture
def h(harness, sendgrid):
    email_provider(harness, sendgrid)
    return harness


def campaign_document() -> dict:
    return doc(
        [("signup", "event_trigger", {"event": "signup"}),
         ("cg", "control_group", {"mode": "count", "count": 80}),
         ("ab", "ab_test", {"variants": [{"id": "a", "name": "Plain"}, {"id": "b", "name": "Emoji"}],
                            "test_size": 40, "metric": "conversions", "evaluation_period": "1d"}),
         ("mail_a", "send_email", {"content": EMAIL}),
         ("mail_b", "send_email", {"content": {**EMAIL, "subject": "🎁 Hi"}})],
        [("signup", "out", "cg"), ("cg", "out", "ab"), ("ab", "a", "mail_a"), ("ab", "b", "mail_b")],
        name="Known outcomes", goal={"event": "purchase", "within": "7d"})


def post_events(h, api, name: str, profile_ids: list[int]) -> None:
    events = [{"event": name, "profile": {"external_id": f"p{pid_index[pid]}"}} for pid in profile_ids]
    ok(api.post("/api/events/batch", json={"events": events}))
    h.machine.run_due()


pid_index: dict[int, int] = {}


def webhook(keys: WebhookKeys, api, rows: list[OutboxMessage], kinds: list[str], at: datetime) -> None:
    """SendGrid's signed Event Webhook with these events of these messages."""
    items = [sendgrid_event(kind, r.id, r.to_address, at) for r in rows for kind in kinds]
    ok(keys.post_sendgrid(api, items, at))


def outbox(h, node_id: str) -> list[OutboxMessage]:
    with h.session() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.node_id == node_id)
                              .order_by(OutboxMessage.profile_id)))


def journeys_at(h, campaign_id: int, node_id: str) -> list[int]:
    """Profiles whose journey ended at a node (positions, not the report's steps)."""
    with h.session() as s:
        return sorted(s.scalars(select(Enrollment.profile_id).where(
            Enrollment.campaign_id == campaign_id, Enrollment.node_id == node_id, Enrollment.state == "done")))


def run_known_campaign(h, api, keys: WebhookKeys) -> int:
    with h.transaction() as s:
        ids = add_profiles(s, 150, attributes=lambda i: {"first_name": f"Ann{i}"})
    pid_index.clear()
    pid_index.update({pid: n for n, pid in enumerate(ids)})
    cid = ok(api.post("/api/campaigns?launch=true", json=campaign_document()), 201)["id"]

    post_events(h, api, "signup", ids[:100])  # day 1, 08:00: 80 held out, 20 into the test
    h.machine.advance_to(DAY1 + timedelta(hours=2))
    post_events(h, api, "signup", ids[100:])  # 10:00: 20 more complete the test, 30 wait
    control = journeys_at(h, cid, "cg")
    test_a = [m.profile_id for m in outbox(h, "mail_a")]
    test_b = [m.profile_id for m in outbox(h, "mail_b")]
    assert (len(control), len(test_a), len(test_b)) == (80, 20, 20)

    webhook(keys, api, outbox(h, "mail_a")[:18], ["delivered"], h.clock.now())
    webhook(keys, api, outbox(h, "mail_a")[:10], ["open"], h.clock.now())
    webhook(keys, api, outbox(h, "mail_a")[:4], ["click"], h.clock.now())
    webhook(keys, api, outbox(h, "mail_a")[18:], ["bounce"], h.clock.now())

    h.machine.advance_to(DAY1 + timedelta(hours=6))  # 14:00: purchases within the evaluation period
    post_events(h, api, "purchase", test_a[:12] + test_b[:16] + control[:48])

    h.machine.advance_to(DAY1 + timedelta(days=1, hours=2, minutes=1))  # the test is decided: b
    rest = [m.profile_id for m in outbox(h, "mail_b") if m.profile_id not in test_b]
    assert len(rest) == 30
    h.machine.advance_to(DAY1 + timedelta(days=1, hours=4))  # day 2, 12:00
    post_events(h, api, "purchase", rest[:28])
    rows_b = outbox(h, "mail_b")
    webhook(keys, api, rows_b[:45], ["delivered"], h.clock.now())
    webhook(keys, api, rows_b[:30], ["open"], h.clock.now())
    webhook(keys, api, rows_b[:10], ["click"], h.clock.now())
    webhook(keys, api, rows_b[40:42], ["unsubscribe"], h.clock.now())
    webhook(keys, api, rows_b[45:48], ["bounce"], h.clock.now())
    webhook(keys, api, rows_b[48:49], ["dropped"], h.clock.now())
    return cid


def test_every_report_figure_of_a_known_campaign(h, api, webhook_keys):
    cid = run_known_campaign(h, api, webhook_keys)
    report = ok(api.get(f"/api/campaigns/{cid}/report"))

    assert report["campaign"]["name"] == "Known outcomes" and report["campaign"]["status"] == "active"
    assert report["goal"] == {"event": "purchase", "within": "7d"}
    assert report["totals"] == {"entered": 150, "converted": 104, "sent": 70, "waiting": 0,
                                "conversion_rate": pytest.approx(104 / 150)}

    nodes = {n["id"]: n for n in report["nodes"]}
    assert list(nodes) == ["signup", "cg", "ab", "mail_a", "mail_b"]
    assert {k: (n["entered"], n["waiting"], n["left"]) for k, n in nodes.items()} == {
        "signup": (150, 0, {"out": 150}), "cg": (150, 0, {"out": 70, "control": 80}),
        "ab": (70, 0, {"a": 20, "b": 50}), "mail_a": (20, 0, {"sent": 20}), "mail_b": (50, 0, {"sent": 50})}
    assert nodes["ab"]["label"] == "A/B test" and nodes["mail_a"]["channel"] == "email"
    assert {k: n["type_label"] for k, n in nodes.items()} == {
        "signup": "Event", "cg": "Control group", "ab": "A/B test", "mail_a": "Send email", "mail_b": "Send email"}
    canvas = ok(api.get(f"/api/campaigns/{cid}/stats"))
    assert {k: {f: n[f] for f in ("entered", "waiting", "left")} for k, n in nodes.items()} == canvas["nodes"]
    assert (canvas["entered"], canvas["converted"]) == (150, 104), "the canvas and the report agree"

    funnels = {m["node_id"]: m for m in report["messages"]}
    assert funnels["mail_a"]["funnel"] == {"queued": 20, "sent": 20, "delivered": 18, "opened": 10, "clicked": 4,
                                           "bounced": 2, "failed": 0, "uncertain": 0, "unsubscribed": 0}
    assert funnels["mail_b"]["funnel"] == {"queued": 50, "sent": 50, "delivered": 45, "opened": 30, "clicked": 10,
                                           "bounced": 3, "failed": 1, "uncertain": 0, "unsubscribed": 2}
    assert funnels["mail_b"]["rates"] == pytest.approx({
        "sent": 1.0, "delivered": 0.9, "opened": 30 / 45, "clicked": 10 / 45, "click_to_open": 10 / 30,
        "bounced": 3 / 50, "failed": 1 / 50, "unsubscribed": 2 / 45})

    (ab,) = report["ab_tests"]
    assert (ab["node_id"], ab["metric"], ab["state"], ab["winner"]) == ("ab", "conversions", "decided", "b")
    assert ab["variants"] == [
        {"id": "a", "name": "Plain", "test_size": 20, "test_hits": 12, "test_rate": 0.6, "entered": 20,
         "converted": 12, "conversion_rate": 0.6, "winner": False},
        {"id": "b", "name": "Emoji", "test_size": 20, "test_hits": 16, "test_rate": 0.8, "entered": 50,
         "converted": 44, "conversion_rate": 0.88, "winner": True}]

    (cg,) = report["control_groups"]
    assert cg["control"] == {"customers": 80, "converted": 48, "rate": 0.6}
    assert cg["treated"] == {"customers": 70, "converted": 56, "rate": 0.8}
    lift = cg["uplift"]
    assert round(lift["absolute"], 4) == 0.2000 and round(lift["relative"], 4) == 0.3333
    assert (round(lift["ci_low"], 4), round(lift["ci_high"], 4)) == (0.0524, 0.3339)
    assert lift["significant"] is True and lift["confidence"] == 0.95

    series = report["series"]
    assert (series["interval"], series["timezone"]) == ("hour", "UTC"), "28 hours of data: hourly"
    points = {p["start"]: (p["entered"], p["converted"]) for p in series["points"]}
    assert len(points) == 29 and series["points"][0]["start"] == "2026-12-01T08:00:00Z"
    assert {k: v for k, v in points.items() if v != (0, 0)} == {
        "2026-12-01T08:00:00Z": (100, 0), "2026-12-01T10:00:00Z": (50, 0),
        "2026-12-01T14:00:00Z": (0, 76), "2026-12-02T12:00:00Z": (0, 28)}

    daily = ok(api.get(f"/api/campaigns/{cid}/report?interval=day"))["series"]["points"]
    assert daily == [{"start": "2026-12-01T00:00:00Z", "entered": 150, "converted": 76},
                     {"start": "2026-12-02T00:00:00Z", "entered": 0, "converted": 28}]
    # UTC+14: 10:00 UTC is already midnight of the next day there
    kiritimati = ok(api.get(f"/api/campaigns/{cid}/report?interval=day&tz=Pacific/Kiritimati"))["series"]
    assert [(p["start"], p["entered"], p["converted"]) for p in kiritimati["points"]] == [
        ("2026-12-01T00:00:00+14:00", 100, 0), ("2026-12-02T00:00:00+14:00", 50, 76),
        ("2026-12-03T00:00:00+14:00", 0, 28)]


def test_uplift_interval_matches_newcombe_1998():
    """Newcombe's table II, method 10 (the hybrid score interval)."""
    assert _interval(70, 56, 80, 48) == (0.0524, 0.3339)
    assert _interval(10, 9, 10, 3) == (0.1705, 0.8090)
    assert _interval(56, 5, 29, 0) == (-0.0381, 0.1926)
    assert _interval(10, 0, 20, 0) == (-0.1611, 0.2775)
    assert _interval(10, 0, 10, 0) == (-0.2775, 0.2775)
    # where the Wald interval collapses to a point, this one stays an interval, not significant
    none = uplift(Outcome(10, 0), Outcome(20, 0))
    assert none["absolute"] == 0 and none["relative"] is None and none["significant"] is False
    assert uplift(Outcome(0, 0), Outcome(20, 3)) is None, "no treated customers: no uplift to show"


def _interval(n1: int, x1: int, n2: int, x2: int) -> tuple[float, float]:
    found = uplift(Outcome(n1, x1), Outcome(n2, x2))
    return round(found["ci_low"], 4), round(found["ci_high"], 4)


def test_wilson_interval_matches_published_values():
    """Newcombe (1998) table I: 81/263 -> (0.2553, 0.3662); 0/20 -> (0, 0.1611)."""
    assert tuple(round(x, 4) for x in wilson(81, 263)) == (0.2553, 0.3662)
    low, high = wilson(0, 20)
    assert round(low, 4) == 0 and round(high, 4) == 0.1611


def test_action_table_pages_filters_and_exports_every_step(h, api, webhook_keys):
    cid = run_known_campaign(h, api, webhook_keys)
    first = ok(api.get(f"/api/campaigns/{cid}/actions?limit=100"))
    # one row per customer per node left: 150 + 150 + 70 + 20 + 50
    assert first["total"] == 440 and len(first["items"]) == 100
    seen, page = [r["id"] for r in first["items"]], first
    while page["next_before"] is not None:
        page = ok(api.get(f"/api/campaigns/{cid}/actions?limit=100&before={page['next_before']}"))
        seen += [r["id"] for r in page["items"]]
    assert len(seen) == len(set(seen)) == 440 and seen == sorted(seen, reverse=True), "newest first, no repeats"

    row = first["items"][0]
    assert set(row) == {"id", "at", "profile_id", "external_id", "email", "phone", "node_id", "node_label",
                        "node_type", "node_type_label", "port", "message_status"}
    opened = ok(api.get(f"/api/campaigns/{cid}/actions?node=mail_b&status=opened&limit=500"))
    assert opened["total"] == 20, "30 opened, 10 of them went on to click (a stronger status)"
    assert {(r["node_label"], r["node_type"], r["node_type_label"], r["port"]) for r in opened["items"]} == {
        ("Send email", "send_email", "Send email", "sent")}
    control = ok(api.get(f"/api/campaigns/{cid}/actions?node=cg&port=control&status=none"))
    assert control["total"] == 80
    ann = first["items"][0]["email"]
    mine = ok(api.get(f"/api/campaigns/{cid}/actions", query_string={"profile": ann}))
    assert {r["email"] for r in mine["items"]} == {ann} and mine["total"] >= 3
    by_id = ok(api.get(f"/api/campaigns/{cid}/actions?profile={first['items'][0]['profile_id']}"))
    assert by_id["total"] == mine["total"]
    later = ok(api.get(f"/api/campaigns/{cid}/actions?since=2026-12-02T00:00:00Z"))
    assert later["total"] == 30 + 30, "the rest left the A/B node and their send node on day 2"

    response = api.get(f"/api/campaigns/{cid}/report.csv?node=mail_b&columns=email,message_status,port")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="campaign-' in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["email", "message_status", "port"] and len(table) == 1 + 50
    statuses = [r[1] for r in table[1:]]
    assert (statuses.count("clicked"), statuses.count("opened"), statuses.count("bounced"),
            statuses.count("dropped")) == (10, 20, 3, 1)
    everything = list(csv.reader(io.StringIO(api.get(f"/api/campaigns/{cid}/report.csv").get_data(as_text=True))))
    assert everything[0] == ["id", "at", "profile_id", "external_id", "email", "phone", "node_label",
                             "node_type_label", "port", "message_status"], "names, not ids or type keys"
    assert [int(r[0]) for r in everything[1:]] == seen, "the CSV is the whole table, in the table's order"
    assert {(r[6], r[7]) for r in everything[1:]} == {
        ("Event", "Event"), ("Control group", "Control group"), ("A/B test", "A/B test"),
        ("Send email", "Send email")}


def test_reports_name_nodes_by_their_labels_and_types_by_their_palette_names(h, api):
    """The marketer's words everywhere: a node's own label, else its type's palette name;
    the type's palette name beside it; the id and type key only in the columns that ask."""
    with h.transaction() as s:
        add_profiles(s, 2)
    document = doc([("n_9tpq45hb22x7", "select_segment", {"source": "all"}),
                    ("n_k2v8q0c1mz4d", "wait", {"amount": 2, "unit": "days"})],
                   [("n_9tpq45hb22x7", "out", "n_k2v8q0c1mz4d")], name="Labels")
    document["nodes"][0]["label"] = "Everyone"
    cid = ok(api.post("/api/campaigns?launch=true", json=document), 201)["id"]
    h.machine.run_due()

    report = ok(api.get(f"/api/campaigns/{cid}/report"))
    assert [(n["id"], n["label"], n["type_label"]) for n in report["nodes"]] == [
        ("n_9tpq45hb22x7", "Everyone", "Select customers from segment"), ("n_k2v8q0c1mz4d", "Wait", "Wait")]
    (row,) = {(r["node_label"], r["node_type_label"]) for r in ok(api.get(f"/api/campaigns/{cid}/actions"))["items"]}
    assert row == ("Everyone", "Select customers from segment")

    default = api.get(f"/api/campaigns/{cid}/report.csv").get_data(as_text=True)
    assert "n_9tpq45hb22x7" not in default and "select_segment" not in default
    table = list(csv.reader(io.StringIO(default)))
    assert [r[6:8] for r in table] == [["node_label", "node_type_label"]] + [["Everyone",
                                                                             "Select customers from segment"]] * 2
    asked = list(csv.reader(io.StringIO(api.get(
        f"/api/campaigns/{cid}/report.csv?columns=node_id,node_type,node_label").get_data(as_text=True))))
    assert asked == [["node_id", "node_type", "node_label"]] + [["n_9tpq45hb22x7", "select_segment", "Everyone"]] * 2


def test_a_node_of_a_type_no_longer_installed_is_named_in_words():
    from engine.journeys.report import node_label, type_label

    gone = {"id": "n_1", "type": "loyalty_points", "settings": {}}
    assert (type_label(gone), node_label(gone), node_label({**gone, "label": "Points"})) == (
        "Loyalty points", "Loyalty points", "Points")


def test_steps_match_the_counters_of_every_port(h, api, webhook_keys):
    cid = run_known_campaign(h, api, webhook_keys)
    with h.session() as s:
        steps = s.execute(select(JourneyStep.node_id, JourneyStep.port)).all()
    counted: dict[tuple[str, str], int] = {}
    for key in steps:
        counted[tuple(key)] = counted.get(tuple(key), 0) + 1
    canvas = ok(api.get(f"/api/campaigns/{cid}/stats"))["nodes"]
    assert counted == {(n, port): c for n, figures in canvas.items() for port, c in figures["left"].items()}


def test_spreadsheet_formulas_in_customer_text_stay_text(h, api):
    with h.transaction() as s:
        add_profiles(s, 3, external_id=lambda i: ["=HYPERLINK(\"http://x\")", "+1555000", "@SUM(A1)"][i],
                     email=lambda i: f"f{i}@example.com", phone=lambda i: [None, "+33 6 12 34 56 78", None][i])
    document = doc([("all", "select_segment", {"source": "all"})], [], name="Formulas")
    cid = ok(api.post("/api/campaigns?launch=true", json=document), 201)["id"]
    h.machine.run_due()
    text = api.get(f"/api/campaigns/{cid}/report.csv?columns=external_id,phone").get_data(as_text=True)
    rows = sorted(csv.reader(io.StringIO(text)))
    assert rows == sorted([["external_id", "phone"], ["'=HYPERLINK(\"http://x\")", ""],
                           ["+1555000", "+33 6 12 34 56 78"], ["'@SUM(A1)", ""]])


@pytest.mark.parametrize("query, field", [
    ("interval=week", "interval"), ("tz=Mars/Olympus", "tz"), ("tz=../../etc/passwd", "tz")])
def test_bad_report_arguments_name_the_field(h, api, query, field):
    cid = ok(api.post("/api/campaigns", json=campaign_document()), 201)["id"]
    error = error_of(api.get(f"/api/campaigns/{cid}/report?{query}"), 400, "invalid_input")
    assert error["details"][0]["pointer"] == field


@pytest.mark.parametrize("path, field", [
    ("actions?status=read", "status"), ("actions?since=yesterday", "since"), ("actions?limit=0", "limit"),
    ("actions?before=-3", "before"), ("actions?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "since"),
    ("report.csv?columns=email,password", "columns"), ("report.csv?status=nope", "status")])
def test_bad_action_arguments_name_the_field(h, api, path, field):
    cid = ok(api.post("/api/campaigns", json=campaign_document()), 201)["id"]
    error = error_of(api.get(f"/api/campaigns/{cid}/{path}"), 400, "invalid_input")
    assert error["details"][0]["pointer"] == field


@pytest.mark.parametrize("path", ["report", "actions", "report.csv"])
def test_reports_of_a_missing_campaign_are_404(h, api, path):
    error_of(api.get(f"/api/campaigns/999999/{path}"), 404, "not_found")


def test_a_draft_reports_zeros_without_dividing_by_zero(h, api):
    cid = ok(api.post("/api/campaigns", json=campaign_document()), 201)["id"]
    report = ok(api.get(f"/api/campaigns/{cid}/report"))
    assert report["totals"] == {"entered": 0, "converted": 0, "sent": 0, "waiting": 0, "conversion_rate": None}
    assert [m["funnel"]["queued"] for m in report["messages"]] == [0, 0]
    assert set(report["messages"][0]["rates"].values()) == {None}
    assert report["ab_tests"][0]["state"] == "testing" and report["ab_tests"][0]["winner"] is None
    assert report["control_groups"][0]["uplift"] is None
    assert report["series"] == {"interval": "hour", "timezone": "UTC", "points": []}
    assert ok(api.get(f"/api/campaigns/{cid}/actions")) == {"items": [], "total": 0, "limit": 50, "next_before": None}
    assert api.get(f"/api/campaigns/{cid}/report.csv").get_data(as_text=True).startswith("id,at,")


def _bulk_steps(h, campaign_id: int, count: int, profile_ids: list[int]) -> None:
    """`count` journey steps spread over the customers, written by one INSERT ... SELECT
    (running a campaign of 200,000 would test the engine again, not the export)."""
    assert profile_ids == list(range(profile_ids[0], profile_ids[0] + len(profile_ids)))
    with h.transaction() as s:
        numbers = ("SELECT g AS x FROM generate_series(1, :n) AS g" if s.get_bind().dialect.name == "postgresql"
                   else "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) SELECT x FROM g")
        s.execute(text(f"INSERT INTO journey_steps (campaign_id, enrollment_id, profile_id, node_id, port, at) "
                       f"SELECT :cid, x, :first + (x % :people), 'mail', 'sent', :at FROM ({numbers}) AS numbers"),
                  {"cid": campaign_id, "n": count, "first": profile_ids[0], "people": len(profile_ids), "at": DAY1})


def _stream(api, path: str) -> tuple[int, int]:
    """(data rows, peak bytes Python allocated) of reading a CSV response chunk by chunk."""
    tracemalloc.start()
    try:
        response = api.get(path, buffered=False)
        assert response.status_code == 200
        lines = 0
        for chunk in response.response:
            lines += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
        response.close()
        return lines - 1, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_200000_row_export_streams_in_flat_memory(h, api):
    with h.transaction() as s:
        people = add_profiles(s, 1000)
    small = ok(api.post("/api/campaigns", json=campaign_document()), 201)["id"]
    large = ok(api.post("/api/campaigns", json=campaign_document()), 201)["id"]
    _bulk_steps(h, small, 20_000, people)
    _bulk_steps(h, large, 200_000, people)

    rows_small, peak_small = _stream(api, f"/api/campaigns/{small}/report.csv")
    rows_large, peak_large = _stream(api, f"/api/campaigns/{large}/report.csv")
    assert (rows_small, rows_large) == (20_000, 200_000)
    # ten times the rows, the same memory: one chunk of rows at a time (about 2.5 MB for the
    # 5,000-row chunk here; the whole 200,000-row table would take some 100 MB)
    print(f"export peak: {peak_small:,} B for 20k rows, {peak_large:,} B for 200k rows")
    assert peak_large < peak_small * 1.5 + 1_000_000, (peak_small, peak_large)
    assert peak_large < 16_000_000, peak_large


def test_the_sweeper_deletes_steps_past_their_retention_and_keeps_the_counters(h, api):
    with h.transaction() as s:
        add_profiles(s, 5)
    document = doc([("all", "select_segment", {"source": "all"}), ("w", "wait", {"amount": 40, "unit": "days"})],
                   [("all", "out", "w")], name="Retention")
    cid = ok(api.post("/api/campaigns?launch=true", json=document), 201)["id"]
    h.machine.run_due()  # day 0: 5 steps out of `all`
    h.machine.advance(timedelta(days=40, minutes=1))  # day 40: 5 steps out of `w`
    h.rt.sweep()
    assert ok(api.get(f"/api/campaigns/{cid}/actions"))["total"] == 10, "0 days keeps every step"
    h.rt.settings = replace(h.rt.settings, step_retention_days=30)
    assert h.rt.sweep()["steps_expired"] == 5
    assert {r["node_id"] for r in ok(api.get(f"/api/campaigns/{cid}/actions"))["items"]} == {"w"}
    assert ok(api.get(f"/api/campaigns/{cid}/report"))["nodes"][0]["left"] == {"out": 5}, "counters stay whole"


@pytest.mark.parametrize("days_ahead", [0, 400], ids=["on the virtual start", "400 days later"])
def test_the_demo_seeds_a_report_with_conversions_an_uplift_and_an_ab_leader(harness, api, days_ahead):
    """The demo seeds as `make run` does, with time passing between its steps, and the report
    is read right after: whatever day the test runs on (it reads no system date)."""
    from engine.core import clock
    from engine.ops.demo import seed

    harness.clock.advance(timedelta(days=days_ahead))
    virtual = clock.use(TickingClock(harness.clock.now()))
    try:
        seeded = seed(harness.rt, profiles_count=600)
        harness.clock.set(clock.now())  # the report is read when the seeding is done
    finally:
        clock.use(virtual)
    assert seeded["seeded"] and seeded["purchases"] > 0
    report = ok(api.get(f"/api/campaigns/{seeded['campaigns']['ab_winback.json']}/report"))
    assert report["totals"]["converted"] == seeded["purchases"]
    (cg,) = report["control_groups"]
    assert cg["treated"]["rate"] > cg["control"]["rate"] > 0
    (ab,) = report["ab_tests"]
    a, b = ab["variants"]
    assert ab["state"] in ("testing", "evaluating") and b["test_rate"] > a["test_rate"] > 0
    assert sum(p["converted"] for p in report["series"]["points"]) == seeded["purchases"]
    assert seed(harness.rt)["seeded"] is False, "a second run changes nothing"


def test_deleting_a_customer_or_a_campaign_deletes_their_steps(h, api, webhook_keys):
    cid = run_known_campaign(h, api, webhook_keys)
    ann = ok(api.get(f"/api/campaigns/{cid}/actions?limit=1"))["items"][0]["profile_id"]
    assert ok(api.get(f"/api/campaigns/{cid}/actions?profile={ann}"))["total"] > 0
    ok(api.delete(f"/api/profiles/{ann}"))
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(JourneyStep).where(JourneyStep.profile_id == ann)) == 0
    ok(api.post(f"/api/campaigns/{cid}/stop"))
    ok(api.delete(f"/api/campaigns/{cid}"))
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(JourneyStep)) == 0
