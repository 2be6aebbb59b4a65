"""Sending, end to end: campaigns whose send nodes write the outbox, RQ dispatch jobs that
send through real providers (the SendGrid SDK, Twilio-style HTTP) to stand-in servers on
127.0.0.1, delivery webhooks, and customers routed by what happened to their message."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from engine.core.models import Notification, OutboxMessage, Profile
from engine.journeys import campaigns
from engine.messaging import providers
from engine.messaging.dispatcher import Dispatcher
from server import create_app
from tests.standins import TwilioStandIn, WebhookStandIn
from tests.support import (
    add_profiles,
    authed_client,
    doc,
    email_provider,
    positions,
    stats,
)

ALL = ("all", "select_segment", {"source": "all"})
EMAIL = {"subject": "Hello {{ profile.attributes.first_name }}", "preheader": "A note for you",
         "html": "<p>Hi {{ profile.attributes.first_name }}, you have {{ profile.points }} points.</p>",
         "text": "Hi {{ profile.attributes.first_name }}"}


@pytest.fixture
def twilio():
    with TwilioStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def configured(harness, sendgrid, twilio):
    """Default email and SMS providers pointing at the stand-ins."""
    email_provider(harness, sendgrid)
    with harness.transaction() as s:
        providers.create_provider(s, {"channel": "sms", "kind": "twilio", "name": "Twilio",
                                      "settings": twilio.settings(), "secrets": twilio.secrets()})
    return harness


def _people(h, count: int, **fields) -> list[int]:
    defaults = {"phone": lambda i: f"+1555{i:07d}", "timezone": "Europe/Paris",
                "attributes": lambda i: {"first_name": f"Ann{i}"}}
    with h.transaction() as s:
        return add_profiles(s, count, **{**defaults, **fields})


def _launch(h, document) -> int:
    with h.transaction() as s:
        cid = campaigns.create(s, document).id
        campaigns.launch(s, cid, h.clock.now())
    h.machine.run_due()
    return cid


def _outbox(h, **where) -> list[OutboxMessage]:
    with h.session() as s:
        return list(s.scalars(select(OutboxMessage).filter_by(**where).order_by(OutboxMessage.id)))


def test_reference_flow_email_wait_check_status_sms_to_non_openers(configured, sendgrid, twilio, webhook_keys):
    h = configured
    _people(h, 200)
    cid = _launch(h, doc(
        [ALL, ("mail", "send_email", {"content": EMAIL}), ("wait", "wait", {"amount": 5, "unit": "days"}),
         ("check", "check_email_status", {"email_node": "mail"}),
         ("sms", "send_sms", {"content": {"body": "{{ profile.attributes.first_name }}, did you see our email?"}})],
        [("all", "out", "mail"), ("mail", "sent", "wait"), ("wait", "out", "check"),
         ("check", "delivered_not_opened", "sms"), ("check", "not_delivered", "sms"), ("check", "bounced", "sms")]))

    assert sendgrid.batch_sizes == [200], "one mail/send request carried all 200 personalizations"
    first = next(d for d in sendgrid.deliveries if d["to"] == "p7@example.com")
    assert first["subject"] == "Hello Ann7" and "Hi Ann7, you have 0 points." in first["html"]
    assert first["text"] == "Hi Ann7"
    assert stats(h, cid)["mail"]["left"] == {"sent": 200}
    assert positions(h, cid) == {("wait", "active"): 200}

    rows = _outbox(h, node_id="mail")
    assert {d["custom_args"]["cc_outbox_id"] for d in sendgrid.deliveries} == {str(r.id) for r in rows}
    ts = int((h.clock.now() + timedelta(minutes=5) - datetime(1970, 1, 1)).total_seconds())
    sent_args = {d["custom_args"]["cc_outbox_id"]: d["custom_args"] for d in sendgrid.deliveries}
    events = []
    for n, row in enumerate(rows):
        # SendGrid echoes the custom args we sent (the signed outbox reference among them)
        base = {"email": row.to_address, "timestamp": ts, **sent_args[str(row.id)], "sg_message_id": "x"}
        if n < 60:
            events += [{**base, "event": "delivered"}, {**base, "event": "open"}]
            if n < 20:
                events.append({**base, "event": "click", "url": "https://example.com/offer"})
        elif n < 160:
            events.append({**base, "event": "delivered"})
        elif n < 180:
            events.append({**base, "event": "bounce", "type": "bounce", "reason": "550 no such user"})
    client = create_app(h.rt)[0].test_client()
    assert webhook_keys.post_sendgrid(client, events, h.clock.now()).status_code == 200

    h.machine.advance(timedelta(days=5, minutes=1))
    assert stats(h, cid)["check"]["left"] == {"clicked": 20, "opened": 40, "delivered_not_opened": 100,
                                              "bounced": 20, "not_delivered": 20}
    assert len(twilio.messages) == 140, "an SMS to each customer who did not open, exactly once"
    assert len({m["to"] for m in twilio.messages}) == 140
    openers = {r.to_address for r in rows[:60]}
    assert not openers & {f"p{int(m['to'][5:])}@example.com" for m in twilio.messages}
    assert any(m["body"] == "Ann170, did you see our email?" for m in twilio.messages)
    assert stats(h, cid)["sms"]["left"] == {"sent": 140}
    with h.session() as s:
        assert s.scalar(select(func.count()).where(Profile.email_bounced_at.is_not(None))) == 20


def test_delivery_window_holds_messages_until_nine_in_the_customers_time_zone(configured, sendgrid):
    h = configured
    _people(h, 10, timezone=lambda i: "Europe/Paris" if i < 6 else "America/New_York")
    cid = _launch(h, doc([ALL, ("mail", "send_email", {"content": EMAIL})], [("all", "out", "mail")]))
    # 08:00 UTC is 09:00 in Paris (window open) and 03:00 in New York (closed until 09:00 = 14:00 UTC)
    assert len(sendgrid.deliveries) == 6
    assert stats(h, cid)["mail"]["waiting"] == 4
    h.machine.advance_to(datetime(2026, 12, 1, 13, 59))
    assert len(sendgrid.deliveries) == 6
    h.machine.advance_to(datetime(2026, 12, 1, 14, 1))
    assert len(sendgrid.deliveries) == 10
    assert stats(h, cid)["mail"]["left"] == {"sent": 10}


def test_deliver_immediately_ignores_the_window(configured, sendgrid):
    h = configured
    _people(h, 4, timezone="America/New_York")
    _launch(h, doc([ALL, ("mail", "send_email", {"content": EMAIL, "deliver_immediately": True})],
                   [("all", "out", "mail")]))
    assert len(sendgrid.deliveries) == 4


def test_customers_without_an_address_or_consent_are_skipped(configured, sendgrid):
    h = configured
    ids = _people(h, 6)
    with h.transaction() as s:
        s.execute(update(Profile).where(Profile.id == ids[0]).values(email=None))
        s.execute(update(Profile).where(Profile.id == ids[1]).values(email_opt_out=True))
        s.execute(update(Profile).where(Profile.id == ids[2]).values(email_bounced_at=datetime(2026, 1, 1)))
    cid = _launch(h, doc([ALL, ("mail", "send_email", {"content": EMAIL})], [("all", "out", "mail")]))
    assert stats(h, cid)["mail"]["left"] == {"sent": 3, "skipped": 3}
    assert sorted(d["to"] for d in sendgrid.deliveries) == ["p3@example.com", "p4@example.com", "p5@example.com"]


def test_transient_failure_is_retried_with_backoff_and_sent_once(configured, sendgrid):
    h = configured
    _people(h, 50)
    sendgrid.fail_next(1, status=503)
    cid = _launch(h, doc([ALL, ("mail", "send_email", {"content": EMAIL})], [("all", "out", "mail")]))
    assert sendgrid.deliveries == [] and stats(h, cid)["mail"]["waiting"] == 50
    h.machine.advance(timedelta(seconds=90))
    assert len(sendgrid.deliveries) == 50 and len({d["to"] for d in sendgrid.deliveries}) == 50
    assert [r.attempts for r in _outbox(h)] == [2] * 50
    assert stats(h, cid)["mail"]["left"] == {"sent": 50}


def test_a_final_provider_error_routes_to_failed(configured, sendgrid):
    h = configured
    _people(h, 5)
    sendgrid.fail_next(1, status=401)
    cid = _launch(h, doc([ALL, ("mail", "send_email", {"content": EMAIL})], [("all", "out", "mail")]))
    assert stats(h, cid)["mail"]["left"] == {"failed": 5}
    assert {r.status for r in _outbox(h)} == {"failed"}


def test_no_answer_is_settled_by_asking_the_provider_not_by_resending(configured, sendgrid):
    """The provider took the batch but the answer never came (read timeout): the rows stay
    `sending`; once the lease runs out, recovery asks SendGrid what it has and resends nothing."""
    h = configured
    with h.transaction() as s:
        config = providers.default_provider(s, "email")
        providers.update_provider(s, config.id, {"settings": {**config.settings, "timeout": 0.5}})
    _people(h, 30)
    sendgrid.delay = 2.0
    cid = _launch(h, doc([ALL, ("mail", "send_email", {"content": EMAIL})], [("all", "out", "mail")]))
    sendgrid.delay = 0.0
    assert len(sendgrid.deliveries) == 30
    assert {r.status for r in _outbox(h)} == {"sending"}
    h.machine.advance(timedelta(minutes=6))  # past the lease: the next dispatch recovers
    with h.transaction() as s:
        from engine.core import wakeups

        wakeups.request_dispatch(s, h.clock.now())
    h.machine.run_due()
    assert len(sendgrid.deliveries) == 30, "nothing was sent twice"
    assert {r.status for r in _outbox(h)} == {"sent"}
    assert stats(h, cid)["mail"]["left"] == {"sent": 30}


def test_concurrent_dispatchers_never_send_a_message_twice(configured, sendgrid):
    h = configured
    _people(h, 1200)
    with h.transaction() as s:
        cid = campaigns.create(s, doc([ALL, ("mail", "send_email", {"content": EMAIL})],
                                      [("all", "out", "mail")])).id
        campaigns.launch(s, cid, h.clock.now())
        version_id = campaigns.get(s, cid).version_id
    h.rt.executor.run(version_id, "all")  # fill the outbox without running the dispatch job
    dispatchers = [Dispatcher(h.rt.sessions, providers.resolve, claim_limit=100) for _ in range(4)]
    threads = [threading.Thread(target=d.run) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(d.stats.sent for d in dispatchers) == 1200
    outbox_ids = [d["custom_args"]["cc_outbox_id"] for d in sendgrid.deliveries]
    assert len(outbox_ids) == len(set(outbox_ids)) == 1200


def test_a_retried_send_step_writes_no_second_message(configured, sendgrid):
    h = configured
    _people(h, 20)
    cid = _launch(h, doc([ALL, ("mail", "send_email", {"content": EMAIL}),
                          ("w", "wait", {"amount": 1, "unit": "days"})],
                         [("all", "out", "mail"), ("mail", "sent", "w")]))
    with h.transaction() as s:  # as if a retried job ran the send node again for everyone
        version_id = campaigns.get(s, cid).version_id
        s.execute(update(OutboxMessage).values(status="queued"))
    with h.transaction() as s:
        from engine.core.models import Enrollment

        s.execute(update(Enrollment).values(node_id="mail", state="active", due_at=h.clock.now()))
    h.rt.executor.run(version_id, "mail")
    assert len(_outbox(h)) == 20, "the (enrollment, node) key admits one message per journey"


def test_in_app_notifications_are_stored_for_the_app_to_read(harness):
    ids = _people(harness, 3)
    cid = _launch(harness, doc([ALL, ("note", "send_inapp", {"content": {
        "title": "Welcome {{ profile.attributes.first_name }}", "body": "Your points: {{ profile.points }}"}})],
        [("all", "out", "note")]))
    assert stats(harness, cid)["note"]["left"] == {"sent": 3}
    client = authed_client(create_app(harness.rt)[0], harness)
    items = client.get(f"/api/profiles/{ids[1]}/notifications").get_json()["items"]
    assert [(n["title"], n["body"]) for n in items] == [("Welcome Ann1", "Your points: 0")]
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 3


def test_web_api_call_sends_the_rendered_body(harness):
    with WebhookStandIn() as hook:
        with harness.transaction() as s:
            providers.create_provider(s, {"channel": "webapi", "kind": "webhook", "name": "CRM",
                                          "settings": hook.settings()})
        _people(harness, 3)
        cid = _launch(harness, doc([ALL, ("crm", "webapi_call", {"content": {"body": {
            "customer": "{{ profile.external_id }}", "campaign": "{{ campaign.name }}"}}})],
            [("all", "out", "crm")]))
        assert stats(harness, cid)["crm"]["left"] == {"sent": 3}
        bodies = sorted((c.json()["customer"], c.json()["campaign"]) for c in hook.calls)
        assert bodies == [("p0", "Test campaign"), ("p1", "Test campaign"), ("p2", "Test campaign")]
        assert len({c.header("Idempotency-Key") for c in hook.calls}) == 3


def test_email_through_smtp(harness):
    from tests.standins import SMTPStandIn

    with SMTPStandIn() as smtp:
        with harness.transaction() as s:
            providers.create_provider(s, {"channel": "email", "kind": "smtp", "name": "Mail server",
                                          "settings": smtp.settings()})
        _people(harness, 3)
        cid = _launch(harness, doc([ALL, ("mail", "send_email", {"content": EMAIL})], [("all", "out", "mail")]))
        assert stats(harness, cid)["mail"]["left"] == {"sent": 3}
        got = sorted((m["to"], m["subject"]) for m in smtp.messages)
        assert got == [("p0@example.com", "Hello Ann0"), ("p1@example.com", "Hello Ann1"),
                       ("p2@example.com", "Hello Ann2")]
        assert all("Hi Ann" in m["text"] and "points" in m["html"] for m in smtp.messages)
        assert {m["outbox_id"] for m in smtp.messages} == {r.id for r in _outbox(harness)}
