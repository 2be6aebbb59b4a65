"""Campaign controls, end to end on SQLite and PostgreSQL with a real Redis and a virtual
clock: a send-rate limit spreads 10,000 messages at the configured rate (none dropped, none
twice), a frequency cap holds across campaigns in each customer's own day (transactional
campaigns exempt), and exit rules end journeys when the goal is met or a segment stops
matching."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from engine.core.controls import period_start
from engine.core.models import OutboxMessage, Segment
from engine.journeys import campaigns
from tests.conftest import START
from tests.support import add_profiles, doc, email_provider, ok, positions, stats

ALL = ("all", "select_segment", {"source": "all"})
MAIL = {"deliver_immediately": True, "content": {"subject": "Hello", "text": "Hi"}}


@pytest.fixture
def h(harness, sendgrid):
    email_provider(harness, sendgrid)
    return harness


def _launch(h, document: dict) -> int:
    with h.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, h.clock.now())
    h.machine.run_due()
    return cid


def _mails(h, campaign_id: int) -> list[OutboxMessage]:
    with h.session() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.campaign_id == campaign_id)))


# --------------------------------------------------------------------------- send rate


def test_a_send_rate_spreads_10000_messages_at_the_configured_rate(h, sendgrid):
    with h.transaction() as s:
        add_profiles(s, 10_000)
    cid = _launch(h, doc([ALL, ("mail", "send_email", MAIL)], [("all", "out", "mail")],
                         settings={"send_rate_per_minute": 1000}))
    h.machine.run_until_idle(limit=timedelta(hours=1))

    sent = _mails(h, cid)
    assert len(sent) == 10_000 and {m.status for m in sent} == {"sent"}, "every message sent, none dropped"
    per_key = Counter(int(d["custom_args"]["cc_outbox_id"]) for d in sendgrid.deliveries)
    assert len(per_key) == 10_000 and set(per_key.values()) == {1}, "each message reached the provider once"
    # the dispatcher runs at the end of each minute's bucket and sends what fell due in it
    per_run = Counter(m.sent_at for m in sent)
    assert max(per_run.values()) <= 1000 and sorted(per_run.values())[-9:] == [1000] * 9, per_run
    assert max(per_run) == START + timedelta(minutes=10), "10,000 at 1,000 a minute take ten minutes"
    assert all(b - a >= timedelta(minutes=1) for a, b in zip(sorted(per_run), sorted(per_run)[1:], strict=False))
    slots = sorted(m.next_attempt_at for m in sent)
    assert slots[1000] - slots[0] == timedelta(minutes=1), "1,000 slots a minute, evenly spaced"
    assert slots[-1] == START + timedelta(seconds=9999 * 0.06)
    assert stats(h, cid)["mail"]["left"] == {"sent": 10_000}


def test_without_a_rate_everything_goes_at_once(h):
    with h.transaction() as s:
        add_profiles(s, 300)
    cid = _launch(h, doc([ALL, ("mail", "send_email", MAIL)], [("all", "out", "mail")]))
    assert {m.sent_at for m in _mails(h, cid)} == {START}


# --------------------------------------------------------------------------- frequency cap


def _capped(h, name: str, cap: int | None = None, transactional: bool = False, mails: int = 1) -> int:
    nodes = [ALL] + [(f"m{i}", "send_email", MAIL) for i in range(mails)]
    edges = [("all", "out", "m0")] + [(f"m{i}", "sent", f"m{i + 1}") for i in range(mails - 1)]
    settings: dict = {"transactional": transactional} if transactional else {}
    if cap:
        settings["frequency_cap"] = {"messages": cap, "per": "day"}
    return _launch(h, doc(nodes, edges, name=name, settings=settings))


def _sent_to(h, campaign_id: int) -> list[str]:
    return sorted(m.to_address for m in _mails(h, campaign_id))


def test_a_frequency_cap_holds_across_campaigns_in_each_customers_day(h):
    # 08:00 UTC on 1 December: 21:00 in Auckland (UTC+13), 09:00 in Paris
    with h.transaction() as s:
        add_profiles(s, 4, timezone="Pacific/Auckland", email=lambda i: f"akl{i}@example.com",
                     external_id=lambda i: f"akl{i}")
        add_profiles(s, 4, timezone="Europe/Paris", email=lambda i: f"par{i}@example.com",
                     external_id=lambda i: f"par{i}")
    first = _capped(h, "Two newsletters", mails=2)
    receipt = _capped(h, "Receipt", transactional=True)
    assert len(_mails(h, first)) == 8 * 2 and len(_mails(h, receipt)) == 8

    h.machine.advance_to(START + timedelta(minutes=30))
    capped = _capped(h, "Capped at two a day", cap=2)
    assert _mails(h, capped) == [], "everyone already got two messages today; the receipt does not count"
    assert stats(h, capped)["m0"]["left"] == {"skipped": 8}

    h.machine.advance_to(START + timedelta(hours=3, minutes=1))  # 00:01 on 2 December in Auckland
    again = _capped(h, "Capped again", cap=2)
    assert _sent_to(h, again) == [f"akl{i}@example.com" for i in range(4)], "a new day in Auckland only"
    generous = _capped(h, "Three a day", cap=3)
    assert _sent_to(h, generous) == sorted([f"akl{i}@example.com" for i in range(4)] +
                                           [f"par{i}@example.com" for i in range(4)])
    transactional = _capped(h, "Transactional ignores caps", cap=1, transactional=True)
    assert len(_mails(h, transactional)) == 8


def test_period_starts_follow_the_local_calendar():
    paris, auckland = ZoneInfo("Europe/Paris"), ZoneInfo("Pacific/Auckland")
    now = datetime(2026, 12, 3, 8, 0)  # a Thursday
    assert period_start(now, paris, "day") == datetime(2026, 12, 2, 23, 0)
    assert period_start(now, auckland, "day") == datetime(2026, 12, 2, 11, 0)
    assert period_start(now, paris, "week") == datetime(2026, 11, 29, 23, 0), "Monday 00:00 in Paris"


# --------------------------------------------------------------------------- exit rules


def test_exit_when_the_goal_is_met_ends_the_journey_where_it_stands(h, api):
    with h.transaction() as s:
        add_profiles(s, 10)
    document = doc([ALL, ("wait", "wait", {"amount": 3, "unit": "days"}), ("mail", "send_email", MAIL)],
                   [("all", "out", "wait"), ("wait", "out", "mail")],
                   goal={"event": "purchase", "within": "7d"}, settings={"exit": {"when": "goal"}})
    cid = _launch(h, document)
    h.machine.advance(timedelta(days=1))
    ok(api.post("/api/events/batch", json={"events": [
        {"event": "purchase", "profile": {"external_id": f"p{i}"}} for i in range(3)]}))
    assert positions(h, cid) == {("wait", "active"): 7, ("wait", "exited"): 3}
    h.machine.advance(timedelta(days=2, minutes=1))
    assert stats(h, cid)["wait"]["left"] == {"out": 7, "@exited": 3}
    assert len(_mails(h, cid)) == 7, "converted customers got no reminder"
    assert ok(api.get(f"/api/campaigns/{cid}/stats"))["converted"] == 3


def test_without_an_exit_rule_converted_customers_carry_on(h, api):
    with h.transaction() as s:
        add_profiles(s, 4)
    cid = _launch(h, doc([ALL, ("wait", "wait", {"amount": 1, "unit": "days"})], [("all", "out", "wait")],
                         goal={"event": "purchase", "within": "7d"}))
    ok(api.post("/api/events", json={"event": "purchase", "profile": {"external_id": "p0"}}), 201)
    assert positions(h, cid) == {("wait", "active"): 4}


def test_exit_when_a_segment_stops_matching(h, api):
    with h.transaction() as s:
        add_profiles(s, 10, attributes=lambda i: {"vip": i < 6})
        segment = Segment(name="VIP", rules={"match": "all", "rules": [
            {"field": "attributes.vip", "op": "eq", "value": True}]})
        s.add(segment)
        s.flush()
        segment_id = segment.id
    document = doc([ALL, ("wait", "wait", {"amount": 2, "unit": "days"}), ("mail", "send_email", MAIL)],
                   [("all", "out", "wait"), ("wait", "out", "mail")],
                   settings={"exit": {"when": "segment", "segment_id": segment_id}})
    cid = _launch(h, document)
    assert positions(h, cid) == {("wait", "active"): 10}
    h.machine.advance(timedelta(minutes=6))  # the next segment refresh (every 5 minutes)
    assert positions(h, cid) == {("wait", "active"): 6, ("wait", "exited"): 4}, "non-members leave at a refresh"

    for i in (0, 1):  # two VIPs lose their status: their journeys end when the profile changes
        ok(api.patch(f"/api/profiles/{_profile_id(h, f'p{i}')}", json={"attributes": {"vip": False}}))
    assert positions(h, cid) == {("wait", "active"): 4, ("wait", "exited"): 6}
    h.machine.advance(timedelta(days=2, minutes=1))
    assert len(_mails(h, cid)) == 4
    assert stats(h, cid)["wait"]["left"] == {"out": 4, "@exited": 6}


def _profile_id(h, external_id: str) -> int:
    from engine.core.models import Profile

    with h.session() as s:
        return s.scalar(select(Profile.id).where(Profile.external_id == external_id))


@pytest.mark.parametrize("settings, pointer", [
    ({"send_rate_per_minute": 0}, "/settings/send_rate_per_minute"),
    ({"frequency_cap": {"messages": 2, "per": "month"}}, "/settings/frequency_cap/per"),
    ({"exit": {"when": "segment"}}, "/settings/exit/segment_id"),
    ({"exit": {"when": "goal"}}, "/goal"),
])
def test_bad_controls_name_the_field(api, settings, pointer):
    document = doc([ALL, ("mail", "send_email", MAIL)], [("all", "out", "mail")], settings=settings)
    problems = ok(api.post("/api/campaigns/validate", json=document))["problems"]
    assert pointer in {p["pointer"] for p in problems if p["severity"] == "error"}


def test_a_missing_exit_segment_refuses_the_launch_and_changes_nothing(h, api):
    document = doc([ALL], [], settings={"exit": {"when": "segment", "segment_id": 9999}})
    cid = ok(api.post("/api/campaigns", json=document), 201)["id"]
    response = api.post(f"/api/campaigns/{cid}/launch")
    assert response.status_code == 409, response.get_data(as_text=True)
    assert response.get_json()["error"]["details"][0]["pointer"] == "/settings/exit/segment_id"
    assert ok(api.get(f"/api/campaigns/{cid}"))["status"] == "draft"
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
