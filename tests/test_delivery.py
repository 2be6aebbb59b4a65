"""Delivery status from provider webhooks, on SQLite and PostgreSQL with a real Redis.

What metrics and consent rely on: each SendGrid event fills the right outbox fields once; the
delivery status never weakens; a retried webhook changes nothing; bounces, unsubscribes and
spam reports mark the profile; one Event per first occurrence; signed webhooks are verified
(a real ECDSA P-256 key pair, signed exactly as SendGrid signs; Twilio's HMAC-SHA1) and a
rejected or malformed request changes nothing; a 10,000-event webhook costs a bounded number
of statements. Every webhook here is signed as its provider signs it (the `webhook_keys`
fixture); what an unsigned or forged one gets is in test_webhook_auth.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, update
from werkzeug.datastructures import MultiDict

from engine.core.entry import enroll_profiles
from engine.core.models import Enrollment, Event, OutboxMessage, Profile, ProviderConfig
from engine.journeys import campaigns
from engine.messaging import outbox_refs
from engine.messaging.delivery import (
    apply_email_events,
    apply_push_status,
    apply_sms_status,
)
from engine.web.api.webhooks import twilio_signature
from tests.support import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    TWILIO_URL,
    SendGridSigner,
    WebhookKeys,
    add_profiles,
    at_once,
    doc,
    sendgrid_event,
    unix,
)

ALL = ("all", "select_segment", {"source": "all"})
SIGNATURE, TIMESTAMP = SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP


@pytest.fixture(autouse=True)
def keys(webhook_keys) -> WebhookKeys:
    return webhook_keys


@pytest.fixture
def client(api):
    return api


# --------------------------------------------------------------------------- builders


def messages(h, count: int, channel: str = "email") -> list[int]:
    """`count` sent outbox rows of one campaign, one profile each. Returns outbox ids."""
    now = h.clock.now()
    with h.transaction() as s:
        tag = uuid.uuid4().hex[:8]  # several calls in one test get distinct customers
        profile_ids = add_profiles(s, count, external_id=lambda i: f"{tag}-{i}",
                                   email=lambda i: f"{tag}-{i}@example.com")
        campaign = campaigns.create(s, doc([ALL, ("w", "wait", {"amount": 1, "unit": "days"})], [("all", "out", "w")]))
        enroll_profiles(s, campaign.id, campaign.version_id, "all", profile_ids, now)
        enrolled = dict(s.execute(select(Enrollment.profile_id, Enrollment.id)
                                  .where(Enrollment.campaign_id == campaign.id)).all())
        rows = [{"campaign_id": campaign.id, "version_id": campaign.version_id, "node_id": "mail",
                 "enrollment_id": enrolled[pid], "profile_id": pid, "channel": channel,
                 "to_address": "", "status": "sent", "sent_at": now,
                 "provider_message_id": f"SM{n:032d}" if channel == "sms" else f"push-{n}"}
                for n, pid in enumerate(profile_ids)]
        ids = list(s.scalars(insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True), rows))
        s.execute(update(OutboxMessage), [{"id": oid, "to_address": address(channel, oid)} for oid in ids])
        return ids


def address(channel: str, outbox_id: int) -> str:
    """Where message `outbox_id` went: an email address, a phone number or a push token."""
    return {"email": f"m{outbox_id}@example.com", "sms": f"+1555{outbox_id:07d}"}.get(channel, f"token-{outbox_id}")


def sg(kind: str, outbox_id: int | None, at: datetime, **extra: Any) -> dict[str, Any]:
    """SendGrid's event about message `outbox_id` (its address, its signed id)."""
    email = address("email", outbox_id) if outbox_id is not None else "someone@example.com"
    return sendgrid_event(kind, outbox_id, email, at, **extra)


def row(h, outbox_id: int) -> OutboxMessage:
    with h.session() as s:
        return s.get(OutboxMessage, outbox_id)


def profile_of(h, outbox_id: int) -> Profile:
    with h.session() as s:
        return s.get(Profile, s.get(OutboxMessage, outbox_id).profile_id)


def events(h) -> list[tuple[str, int, datetime]]:
    """(name, outbox id, occurred_at) of every recorded Event, sorted."""
    with h.session() as s:
        return sorted((e.name, e.properties["outbox_id"], e.occurred_at) for e in s.scalars(select(Event)))


def snapshot(h) -> tuple[list[Any], list[Any], list[Any]]:
    """Everything a webhook may change: delivery columns, events, consent."""
    with h.session() as s:
        outbox = s.execute(select(OutboxMessage.id, OutboxMessage.delivery_status, OutboxMessage.delivered_at,
                                  OutboxMessage.opened_at, OutboxMessage.clicked_at, OutboxMessage.bounced_at,
                                  OutboxMessage.unsubscribed_at).order_by(OutboxMessage.id)).all()
        recorded = s.execute(select(Event.id, Event.name, Event.properties, Event.occurred_at)
                             .order_by(Event.id)).all()
        consent = s.execute(select(Profile.id, Profile.email_opt_out, Profile.email_bounced_at, Profile.sms_opt_out,
                                   Profile.updated_at).order_by(Profile.id)).all()
    return [tuple(r) for r in outbox], [tuple(r) for r in recorded], [tuple(r) for r in consent]


def apply(h, items: list[Any]) -> dict[str, int]:
    with h.transaction() as s:
        return apply_email_events(s, items, h.clock.now(), signing_key=outbox_refs.key())


# --------------------------------------------------------------------------- signing


def post_sendgrid(client, body: bytes, headers: dict[str, str] | None = None):
    return client.post("/webhooks/sendgrid", data=body, headers=headers or {}, content_type="application/json")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.content_type
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    return error


# --------------------------------------------------------------------------- email events


def test_each_event_type_fills_its_fields(harness, client, keys):
    kinds = ["processed", "deferred", "delivered", "open", "click", "bounce", "dropped", "spamreport",
             "unsubscribe", "group_unsubscribe"]
    ids = dict(zip(kinds, messages(harness, len(kinds)), strict=True))
    at = harness.clock.now() - timedelta(minutes=5)
    items = [sg(kind, ids[kind], at, **({"url": "https://shop.example/x"} if kind == "click" else {}),
                **({"reason": "Bounced Address"} if kind == "dropped" else {})) for kind in kinds]
    response = keys.post_sendgrid(client, items, harness.clock.now())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"applied": len(kinds), "ignored": 0, "duplicates": 0}

    expected = {"processed": "processed", "deferred": "deferred", "delivered": "delivered", "open": "opened",
                "click": "clicked", "bounce": "bounced", "dropped": "dropped", "spamreport": "spamreport",
                "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed"}
    for kind, status in expected.items():
        assert row(harness, ids[kind]).delivery_status == status, kind
    assert row(harness, ids["delivered"]).delivered_at == at
    assert row(harness, ids["open"]).opened_at == at
    clicked = row(harness, ids["click"])
    assert (clicked.clicked_at, clicked.opened_at) == (at, at)  # a click implies the open
    assert row(harness, ids["bounce"]).bounced_at == at
    dropped = row(harness, ids["dropped"])
    assert dropped.delivered_at is None and dropped.bounced_at is None
    assert row(harness, ids["unsubscribe"]).unsubscribed_at == at
    assert row(harness, ids["group_unsubscribe"]).unsubscribed_at == at
    for kind in ("processed", "deferred"):
        r = row(harness, ids[kind])
        assert (r.delivered_at, r.opened_at, r.clicked_at, r.bounced_at, r.unsubscribed_at) == (None,) * 5


def test_consent_bounce_drop_unsubscribe_spamreport(harness):
    kinds = ["bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe", "delivered", "click",
             "blocked", "dropped_invalid"]
    ids = dict(zip(kinds, messages(harness, len(kinds)), strict=True))
    at = harness.clock.now() - timedelta(minutes=1)
    apply(harness, [sg("bounce", ids["bounce"], at, type="bounce"),
                    sg("dropped", ids["dropped"], at, reason="Bounced Address"),
                    sg("spamreport", ids["spamreport"], at), sg("unsubscribe", ids["unsubscribe"], at),
                    sg("group_unsubscribe", ids["group_unsubscribe"], at, asm_group_id=3),
                    sg("delivered", ids["delivered"], at), sg("click", ids["click"], at),
                    sg("bounce", ids["blocked"], at, type="blocked"),
                    sg("dropped", ids["dropped_invalid"], at, reason="Invalid")])
    consent = {k: (p.email_bounced_at, p.email_opt_out) for k in kinds if (p := profile_of(harness, ids[k]))}
    assert consent == {
        "bounce": (at, False), "dropped": (at, False), "spamreport": (None, True), "unsubscribe": (None, True),
        "group_unsubscribe": (None, True), "delivered": (None, False), "click": (None, False),
        "blocked": (None, False),  # a block is temporary: SendGrid does not suppress the address
        "dropped_invalid": (None, False),
    }
    assert row(harness, ids["blocked"]).delivery_status == "bounced"


def test_status_keeps_the_strongest_state(harness):
    bounced, opened, deferred_late, spam = messages(harness, 4)
    t = harness.clock.now() - timedelta(hours=1)
    apply(harness, [sg("bounce", bounced, t), sg("open", opened, t), sg("delivered", deferred_late, t),
                    sg("spamreport", spam, t)])
    # late and out-of-order reports, in a later webhook
    apply(harness, [sg("delivered", bounced, t - timedelta(minutes=5)), sg("processed", bounced, t),
                    sg("delivered", opened, t - timedelta(minutes=1)), sg("deferred", opened, t),
                    sg("deferred", deferred_late, t + timedelta(minutes=1)),
                    sg("unsubscribe", spam, t), sg("open", spam, t)])
    assert row(harness, bounced).delivery_status == "bounced"
    assert row(harness, bounced).delivered_at == t - timedelta(minutes=5)  # it did happen: kept as a fact
    assert row(harness, opened).delivery_status == "opened"
    assert row(harness, deferred_late).delivery_status == "delivered"
    assert row(harness, spam).delivery_status == "spamreport"


def test_events_in_one_webhook_apply_oldest_first(harness):
    (oid,) = messages(harness, 1)
    t = harness.clock.now() - timedelta(hours=1)
    counts = apply(harness, [sg("open", oid, t + timedelta(minutes=9)), sg("click", oid, t + timedelta(minutes=10)),
                             sg("open", oid, t + timedelta(minutes=2)), sg("delivered", oid, t)])
    assert counts == {"applied": 3, "ignored": 0, "duplicates": 1}
    r = row(harness, oid)
    assert (r.delivered_at, r.opened_at, r.clicked_at) == (t, t + timedelta(minutes=2), t + timedelta(minutes=10))
    assert r.delivery_status == "clicked"


def test_a_retried_webhook_changes_nothing(harness, client, keys):
    ids = messages(harness, 7)
    t = harness.clock.now() - timedelta(minutes=30)
    items = [sg("processed", ids[0], t), sg("delivered", ids[0], t), sg("open", ids[1], t), sg("click", ids[2], t),
             sg("bounce", ids[3], t), sg("unsubscribe", ids[4], t), sg("spamreport", ids[5], t),
             sg("dropped", ids[6], t, reason="Bounced Address")]
    first = keys.post_sendgrid(client, items, harness.clock.now())
    assert first.get_json() == {"applied": 8, "ignored": 0, "duplicates": 0}
    before = snapshot(harness)
    harness.clock.advance(timedelta(minutes=1))
    again = keys.post_sendgrid(client, items, harness.clock.now())
    assert again.status_code == 200
    assert again.get_json() == {"applied": 0, "ignored": 0, "duplicates": 8}
    assert snapshot(harness) == before  # profiles' updated_at included: not even touched


def test_consent_is_not_reapplied_by_a_replay(harness):
    """A customer who opts back in is not opted out again by a retried old webhook."""
    (oid,) = messages(harness, 1)
    items = [sg("unsubscribe", oid, harness.clock.now())]
    apply(harness, items)
    with harness.transaction() as s:
        s.get(Profile, s.get(OutboxMessage, oid).profile_id).email_opt_out = False
    apply(harness, items)
    assert profile_of(harness, oid).email_opt_out is False


def test_one_event_per_first_occurrence_with_names_and_properties(harness):
    ids = messages(harness, 5)
    t = harness.clock.now() - timedelta(minutes=20)
    later = t + timedelta(minutes=5)
    apply(harness, [sg("processed", ids[0], t), sg("delivered", ids[0], t), sg("delivered", ids[0], later),
                    sg("open", ids[0], t), sg("open", ids[0], later),
                    sg("click", ids[1], t, url="https://shop.example/a"),
                    sg("click", ids[1], later, url="https://shop.example/b"),
                    sg("bounce", ids[2], t), sg("unsubscribe", ids[3], t), sg("group_unsubscribe", ids[3], later),
                    sg("spamreport", ids[4], t), sg("spamreport", ids[4], later), sg("deferred", ids[4], t)])
    assert events(harness) == sorted([
        ("email.delivered", ids[0], t), ("email.open", ids[0], t),
        ("email.open", ids[1], t), ("email.click", ids[1], t),
        ("email.bounce", ids[2], t), ("email.unsubscribe", ids[3], t), ("email.spamreport", ids[4], t)])
    with harness.session() as s:
        click = s.scalars(select(Event).where(Event.name == "email.click")).one()
        outbox = s.get(OutboxMessage, ids[1])
    assert click.properties == {"outbox_id": ids[1], "campaign_id": outbox.campaign_id, "node_id": "mail",
                                "url": "https://shop.example/a"}
    assert click.profile_id == outbox.profile_id


def test_events_that_are_not_ours_are_ignored(harness):
    (oid,) = messages(harness, 1)
    (sms_id,) = messages(harness, 1, channel="sms")
    t = harness.clock.now()
    counts = apply(harness, [
        sg("delivered", None, t),  # no cc_outbox_id (sent by something else)
        sg("delivered", 999_999, t),  # unknown row
        sg("delivered", sms_id, t),  # not an email
        {**sg("delivered", oid, t), "cc_outbox_id": "12; DROP TABLE outbox"},
        {**sg("delivered", oid, t), "cc_outbox_id": str(2**70)},  # out of BIGINT range
        {**sg("delivered", oid, t), "cc_outbox_id": True},
        sg("group_resubscribe", oid, t), sg("nonsense", oid, t), "junk", None, 42, ["x"],
        {**sg("open", oid, t), "timestamp": "not a time"},  # applied, at "now"
        sg("dropped", 999_999, t, reason=["unhashable"]), sg("bounce", oid, t, timestamp=10**400, type={}),
        sg("click", oid, t, url="https://x.example/\u0000\ud800"), {**sg("delivered", oid, t), "timestamp": "1e400"},
    ])
    assert counts == {"applied": 4, "ignored": 13, "duplicates": 0}
    assert row(harness, oid).opened_at == t
    assert row(harness, sms_id).delivery_status is None


def test_event_times_in_the_future_are_clamped_to_now(harness):
    (oid,) = messages(harness, 1)
    apply(harness, [sg("delivered", oid, harness.clock.now() + timedelta(days=400))])
    assert row(harness, oid).delivered_at == harness.clock.now()


def test_ten_thousand_events_take_a_bounded_number_of_statements(harness, client, keys):
    ids = messages(harness, 2500)
    t = harness.clock.now() - timedelta(minutes=30)
    last = ["click", "unsubscribe", "bounce", "click", "spamreport"]
    items = [sg(kind, oid, t + timedelta(seconds=n)) for i, oid in enumerate(ids)
             for n, kind in enumerate(["processed", "delivered", "open", last[i % 5]])]
    assert len(items) == 10_000
    body = json.dumps(items).encode()
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(harness.rt.engine, "before_cursor_execute", count)
    try:
        response = keys.post_sendgrid(client, None, harness.clock.now(), body=body)
    finally:
        event.remove(harness.rt.engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"applied": 10_000, "ignored": 0, "duplicates": 0}
    assert len(statements) < 50, statements
    with harness.session() as s:
        assert s.query(Event).count() == 2500 * 3  # delivered, open, and the last one
        assert s.query(Profile).filter(Profile.email_opt_out.is_(True)).count() == 1000
        assert s.query(Profile).filter(Profile.email_bounced_at.is_not(None)).count() == 500
        assert s.query(OutboxMessage).filter(OutboxMessage.delivery_status == "clicked").count() == 1000


# --------------------------------------------------------------------------- signed webhooks


@pytest.fixture
def sendgrid_key(keys) -> SendGridSigner:
    return keys.sendgrid


def test_signed_webhook_is_verified(harness, client, sendgrid_key):
    (oid,) = messages(harness, 1)
    now = unix(harness.clock.now())
    body = json.dumps([sg("delivered", oid, harness.clock.now())]).encode()
    empty = snapshot(harness)

    wrong_key = SendGridSigner()
    rejected = {
        "unsigned": {},
        "tampered body": (body.replace(b"delivered", b"bounce"), sendgrid_key.headers(body, now)),
        "wrong key": wrong_key.headers(body, now),
        "stale timestamp": sendgrid_key.headers(body, now - 25 * 3600),
        "future timestamp": sendgrid_key.headers(body, now + 11 * 60),
        "signature for another timestamp": {**sendgrid_key.headers(body, now - 60), TIMESTAMP: str(now)},
        "junk signature": {SIGNATURE: "%%% not base64 %%%", TIMESTAMP: str(now)},
        "junk timestamp": {**sendgrid_key.headers(body, now), TIMESTAMP: "yesterday"},
        "huge timestamp": {**sendgrid_key.headers(body, now), TIMESTAMP: "9" * 400},
    }
    for case, headers in rejected.items():
        payload, headers = headers if isinstance(headers, tuple) else (body, headers)
        error = error_of(post_sendgrid(client, payload, headers), 403)
        assert error["code"] == "invalid_signature", case
    assert snapshot(harness) == empty

    ok = post_sendgrid(client, body, sendgrid_key.headers(body, now - 9 * 60))
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert row(harness, oid).delivery_status == "delivered"


def test_signed_webhook_key_from_the_provider_config(harness, client, monkeypatch):
    monkeypatch.delenv("CC_SENDGRID_WEBHOOK_PUBLIC_KEY")
    (oid,) = messages(harness, 1)
    private = SendGridSigner()
    public = private.public
    with harness.transaction() as s:
        s.add(ProviderConfig(channel="email", kind="sendgrid", name="SendGrid", is_default=True,
                             settings={"from_email": "shop@example.com", "webhook_public_key": public},
                             secrets={"api_key": "SG.x"}))
    body = json.dumps([sg("open", oid, harness.clock.now())]).encode()
    now = unix(harness.clock.now())
    assert post_sendgrid(client, body).status_code == 403
    assert post_sendgrid(client, body, private.headers(body, now)).status_code == 200
    assert row(harness, oid).opened_at is not None


def test_an_unusable_configured_key_rejects_everything(harness, client, monkeypatch):
    monkeypatch.setenv("CC_SENDGRID_WEBHOOK_PUBLIC_KEY", "not a key")
    (oid,) = messages(harness, 1)
    body = json.dumps([sg("open", oid, harness.clock.now())]).encode()
    error_of(post_sendgrid(client, body, SendGridSigner().headers(body, unix(harness.clock.now()))), 403)
    assert row(harness, oid).opened_at is None


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"event": "open"}', b"42", b"[" * 100_000, b"null"])
def test_junk_sendgrid_bodies_are_400_json(harness, client, keys, body):
    messages(harness, 1)
    before = snapshot(harness)
    error = error_of(keys.post_sendgrid(client, None, harness.clock.now(), body=body), 400)
    assert error["code"] == "invalid_input"
    assert snapshot(harness) == before


def test_junk_signed_bodies_are_rejected_without_a_500(harness, client, sendgrid_key):
    now = unix(harness.clock.now())
    for body in (b"\xff\xfe\x00junk", b"[" * 100_000, b"{}"):
        response = post_sendgrid(client, body, sendgrid_key.headers(body, now))
        assert 400 <= response.status_code < 500 and response.is_json, body[:10]


def test_wrong_method_is_json(client):
    response = client.put("/webhooks/sendgrid", json=[])
    assert response.status_code == 405 and response.is_json


# --------------------------------------------------------------------------- Twilio


def callback(h, outbox_id: int, status: str, **extra: str) -> dict[str, str]:
    """Twilio's status callback about SMS `outbox_id` (its SID and number)."""
    return {"MessageSid": row(h, outbox_id).provider_message_id, "MessageStatus": status, "AccountSid": "AC1",
            "To": address("sms", outbox_id), "From": "+15550000000", **extra}


def test_twilio_status_callbacks(harness, client, keys):
    ids = messages(harness, 3, channel="sms")
    for status in ("queued", "sent", "delivered", "sent"):
        response = keys.post_twilio(client, callback(harness, ids[0], status))
        assert response.status_code == 200, response.get_data(as_text=True)
    assert keys.post_twilio(client, callback(harness, ids[0], "delivered")).get_json() == \
        {"applied": 0, "ignored": 0, "duplicates": 1}
    keys.post_twilio(client, callback(harness, ids[1], "undelivered", ErrorCode="30003"))
    keys.post_twilio(client, callback(harness, ids[2], "failed", ErrorCode="21610"))
    first = row(harness, ids[0])
    assert (first.delivery_status, first.delivered_at) == ("delivered", harness.clock.now())
    assert row(harness, ids[1]).delivery_status == "undelivered"
    assert row(harness, ids[1]).bounced_at == harness.clock.now()
    assert row(harness, ids[2]).delivery_status == "failed"
    assert profile_of(harness, ids[1]).sms_opt_out is False
    assert profile_of(harness, ids[2]).sms_opt_out is True  # 21610: the customer texted STOP
    assert [(n, o) for n, o, _ in events(harness)] == sorted(
        [("sms.delivered", ids[0]), ("sms.failed", ids[1]), ("sms.failed", ids[2])])


def test_twilio_signature(harness, client, keys, monkeypatch):
    (oid,) = messages(harness, 1, channel="sms")
    form = callback(harness, oid, "delivered")
    token = keys.twilio_token  # in the environment
    for bad in ({}, {"X-Twilio-Signature": "bm9wZQ=="}, {"X-Twilio-Signature": "é"},
                {"X-Twilio-Signature": twilio_signature("other", TWILIO_URL, MultiDict(form))},
                {"X-Twilio-Signature": twilio_signature(token, "http://localhost/elsewhere", MultiDict(form))}):
        error = error_of(client.post("/webhooks/twilio", data=form, headers=bad), 403)
        assert error["code"] == "invalid_signature"
    tampered = twilio_signature(token, TWILIO_URL, MultiDict(form))
    error_of(client.post("/webhooks/twilio", data={**form, "MessageStatus": "failed"},
                         headers={"X-Twilio-Signature": tampered}), 403)
    assert row(harness, oid).delivery_status is None
    # behind a TLS-terminating proxy Twilio signed the https URL
    assert keys.post_twilio(client, form, url="https://localhost/webhooks/twilio").status_code == 200
    assert row(harness, oid).delivery_status == "delivered"

    # a token in a twilio provider config
    monkeypatch.delenv("CC_TWILIO_AUTH_TOKEN")
    with harness.transaction() as s:
        s.add(ProviderConfig(channel="sms", kind="twilio", name="Twilio", is_default=True,
                             settings={"account_sid": "AC1", "from_number": "+15550000000"},
                             secrets={"auth_token": "config-token"}))
    read = {**form, "MessageStatus": "read"}
    assert keys.post_twilio(client, read).status_code == 403
    assert keys.post_twilio(client, read, token="config-token").status_code == 200
    assert row(harness, oid).delivery_status == "opened"


@pytest.mark.parametrize("form", [{}, {"MessageSid": "SM1"}, {"MessageStatus": "sent"}])
def test_twilio_junk_is_400_json(harness, client, keys, form):
    error_of(keys.post_twilio(client, form), 400)
    junk = client.post("/webhooks/twilio", data=b"\xff\x00junk", content_type="application/json",
                       headers={"X-Twilio-Signature": twilio_signature(keys.twilio_token, TWILIO_URL, MultiDict())})
    error_of(junk, 400)


def test_twilio_unknown_messages_and_statuses_are_ignored(harness, client, keys):
    (oid,) = messages(harness, 1, channel="sms")
    for form in ({**callback(harness, oid, "delivered"), "MessageSid": "SM-unknown"},
                 callback(harness, oid, "exploded"),
                 {**callback(harness, oid, "delivered"), "MessageSid": "SM\x00nul"},
                 {**callback(harness, oid, "delivered"), "MessageSid": "S" * 5000}):
        response = keys.post_twilio(client, form)
        assert response.status_code == 200 and response.get_json()["ignored"] == 1, form
    assert row(harness, oid).delivery_status is None


def test_apply_sms_status_by_outbox_id(harness):
    (oid,) = messages(harness, 1, channel="sms")
    with harness.transaction() as s:
        assert apply_sms_status(s, oid, "delivered", harness.clock.now(), to=address("sms", oid))["applied"] == 1
    assert row(harness, oid).delivery_status == "delivered"


# --------------------------------------------------------------------------- push


def test_push_receipts(harness, client, keys):
    ids = messages(harness, 3, channel="push")
    t = harness.clock.now() - timedelta(minutes=3)
    response = keys.post_push(client, [
        {"message_id": "push-0", "status": "delivered", "timestamp": unix(t)},
        {"message_id": "push-0", "status": "opened"},
        {"outbox_id": ids[1], "status": "failed"},
        {"message_id": "push-9", "status": "delivered"}, {"message_id": "push-2", "status": "burnt"}, "junk"])
    assert response.get_json() == {"applied": 3, "ignored": 3, "duplicates": 0}
    first = row(harness, ids[0])
    assert (first.delivery_status, first.delivered_at, first.opened_at) == ("opened", t, harness.clock.now())
    assert row(harness, ids[1]).delivery_status == "failed"
    assert keys.post_push(client, {"message_id": "push-0", "status": "opened"}).get_json() == \
        {"applied": 0, "ignored": 0, "duplicates": 1}
    with harness.transaction() as s:
        assert apply_push_status(s, ids[2], "delivered", harness.clock.now())["applied"] == 1
    assert [n for n, _, _ in events(harness)] == sorted(["push.delivered", "push.open", "push.failed",
                                                         "push.delivered"])


def test_push_token_and_junk(harness, client, keys):
    messages(harness, 1, channel="push")
    bearer = {"Authorization": f"Bearer {keys.push_token}"}
    for body in (b"", b"nope", b"42", b'"text"'):
        error_of(client.post("/webhooks/push", data=body, content_type="application/json", headers=bearer), 400)
    receipt = {"message_id": "push-0", "status": "delivered"}
    error_of(client.post("/webhooks/push", json=receipt), 403)
    error_of(client.post("/webhooks/push", json=receipt, headers={"Authorization": "Bearer nope"}), 403)
    ok = client.post("/webhooks/push", json=receipt, headers=bearer)
    assert ok.status_code == 200 and ok.get_json()["applied"] == 1


def test_the_same_webhook_twice_at_once_records_each_event_once(harness):
    """SendGrid may deliver a retry while the first attempt is still running: the rows are
    locked while read, so the second request sees what the first wrote."""
    ids = messages(harness, 200)
    t = harness.clock.now() - timedelta(minutes=1)
    items = [sg(kind, oid, t) for oid in ids for kind in ("delivered", "open", "unsubscribe")]
    results = at_once(2, lambda: apply(harness, items))
    assert sorted(r["applied"] for r in results) == [0, 600]
    assert len(events(harness)) == 600
