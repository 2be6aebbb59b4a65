"""Who may report delivery status: the attacks an outside tester tried on the provider
webhooks, on SQLite and PostgreSQL with a real Redis.

The messages are real: a launched campaign emails, texts and pushes 30 customers through the
SendGrid, Twilio and FCM stand-ins, so the SendGrid events below carry exactly the custom
arguments the stand-in received, and the Twilio callbacks name real SIDs. Each attack is
checked by what a marketer would see change: consent flags, delivery statuses, events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from engine.core.models import Event, OutboxMessage, Profile
from engine.journeys import campaigns
from engine.messaging import providers
from engine.web.api.webhooks import twilio_signature
from tests.served import CLI, answering, free_port, stop, wait_for
from tests.standins import FCMStandIn, TwilioStandIn
from tests.support import (
    TWILIO_URL,
    add_profiles,
    doc,
    email_provider,
    sendgrid_event,
)

CUSTOMERS = 30
KEY_SETTINGS = ("CC_SENDGRID_WEBHOOK_PUBLIC_KEY", "CC_TWILIO_AUTH_TOKEN", "CC_PUSH_WEBHOOK_TOKEN")
INSECURE = "CC_INSECURE_ALLOW_UNSIGNED_WEBHOOKS"


@dataclass
class Sent:
    """What went out: per channel, the outbox rows (id, address, provider message id)."""

    email: list[tuple[int, str, str | None]]
    sms: list[tuple[int, str, str | None]]
    push: list[tuple[int, str, str | None]]
    #: what SendGrid received as each message's custom args, by outbox id
    custom_args: dict[int, dict[str, str]]


@pytest.fixture
def twilio():
    with TwilioStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def fcm():
    with FCMStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def no_keys(monkeypatch) -> None:
    """The default: no webhook key configured, unsigned webhooks not allowed."""
    for name in (*KEY_SETTINGS, INSECURE):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sent(harness, sendgrid, twilio, fcm) -> Sent:
    """30 customers emailed, texted and pushed by a launched campaign, through the stand-ins."""
    email_provider(harness, sendgrid)
    with harness.transaction() as s:
        providers.create_provider(s, {"channel": "sms", "kind": "twilio", "name": "Twilio",
                                      "settings": twilio.settings(), "secrets": twilio.secrets()})
        providers.create_provider(s, {"channel": "push", "kind": "fcm", "name": "FCM",
                                      "settings": fcm.settings(), "secrets": fcm.secrets()})
        add_profiles(s, CUSTOMERS, phone=lambda i: f"+1555{i:07d}", push_tokens=lambda i: [f"device-{i}"])
        now = {"deliver_immediately": True}
        campaign = campaigns.create(s, doc(
            [("all", "select_segment", {"source": "all"}),
             ("mail", "send_email", {**now, "content": {"subject": "Hi", "text": "Hello"}}),
             ("sms", "send_sms", {**now, "content": {"body": "Hello"}}),
             ("push", "send_push", {**now, "content": {"title": "Hello"}})],
            [("all", "out", "mail"), ("all", "out", "sms"), ("all", "out", "push")]))
        campaigns.launch(s, campaign.id, harness.clock.now())
    harness.machine.run_due()
    with harness.session() as s:
        rows = s.execute(select(OutboxMessage.channel, OutboxMessage.id, OutboxMessage.to_address,
                                OutboxMessage.provider_message_id, OutboxMessage.status)
                         .order_by(OutboxMessage.id)).all()
    assert {r.status for r in rows} == {"sent"} and len(rows) == 3 * CUSTOMERS
    by_channel = {c: [(r.id, r.to_address, r.provider_message_id) for r in rows if r.channel == c]
                  for c in ("email", "sms", "push")}
    args = {int(d["custom_args"]["cc_outbox_id"]): d["custom_args"] for d in sendgrid.deliveries}
    return Sent(by_channel["email"], by_channel["sms"], by_channel["push"], args)


def consent(h) -> dict[str, int]:
    """How many customers are opted out or bounced, per flag."""
    with h.session() as s:
        return {"email_opt_out": s.scalar(select(func.count()).where(Profile.email_opt_out.is_(True))),
                "email_bounced": s.scalar(select(func.count()).where(Profile.email_bounced_at.is_not(None))),
                "sms_opt_out": s.scalar(select(func.count()).where(Profile.sms_opt_out.is_(True)))}


def delivery(h) -> dict[str, int]:
    """Messages per delivery status (None: no report yet), and the events recorded."""
    with h.session() as s:
        statuses = dict(s.execute(select(OutboxMessage.delivery_status, func.count())
                                  .group_by(OutboxMessage.delivery_status)).all())
        return {**{str(k): v for k, v in statuses.items()}, "events": s.scalar(select(func.count(Event.id)))}


UNTOUCHED = {"email_opt_out": 0, "email_bounced": 0, "sms_opt_out": 0}


def unsubscribe_everyone() -> list[dict[str, Any]]:
    """The tester's request: 10,000 unsubscribe events with sequential outbox ids, as the
    webhook body SendGrid would post (no signature, addresses guessed)."""
    return [{"email": f"guess{n}@example.com", "event": "unsubscribe", "timestamp": 1_700_000_000,
             "cc_outbox_id": str(n)} for n in range(1, 10_001)]


def email_event(sent: Sent, index: int, kind: str, h, **changes: Any) -> dict[str, Any]:
    """SendGrid's event about the index-th email: its address and the custom args it carried."""
    outbox_id, address, _ = sent.email[index]
    args = sent.custom_args[outbox_id]
    return {**sendgrid_event(kind, outbox_id, address, h.clock.now(), sig=args.get("cc_sig", "")), **changes}


# --------------------------------------------------------------------------- no key: refused


@pytest.mark.chaos
def test_an_anonymous_mass_unsubscribe_is_refused_and_changes_nothing(harness, api, sent, no_keys, chaos_report):
    before = (consent(harness), delivery(harness))
    assert before == (UNTOUCHED, {"None": 3 * CUSTOMERS, "events": 0})

    response = api.post("/webhooks/sendgrid", json=unsubscribe_everyone())

    assert response.status_code == 403, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "webhook_key_missing"
    assert "no verification key is configured" in error["message"]
    after = (consent(harness), delivery(harness))
    chaos_report("an anonymous webhook unsubscribing 10,000 guessed message ids", forged=10_000,
                 applied=after[1]["events"] - before[1]["events"], opted_out=after[0]["email_opt_out"])
    assert after == before


def test_an_unsigned_mass_unsubscribe_is_refused_when_a_key_is_configured(harness, api, sent, webhook_keys):
    response = api.post("/webhooks/sendgrid", json=unsubscribe_everyone())
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "invalid_signature"
    assert consent(harness) == UNTOUCHED


def test_forged_bounces_and_sms_and_push_receipts_are_refused(harness, api, sent, no_keys):
    before = delivery(harness)
    bounce = [email_event(sent, n, "bounce", harness, type="bounce") for n in range(CUSTOMERS)]
    _, number, sid = sent.sms[0]
    twilio_form = {"MessageSid": str(sid), "MessageStatus": "failed", "ErrorCode": "21610", "To": number}
    push_id = sent.push[0][0]

    answers = [api.post("/webhooks/sendgrid", json=bounce),
               api.post("/webhooks/twilio", data=twilio_form),
               api.post("/webhooks/push", json=[{"outbox_id": push_id, "status": "failed"}])]

    # the Twilio provider config's auth token checks Twilio's signature even with no setting
    assert [(r.status_code, r.get_json().get("error", {}).get("code")) for r in answers] == [
        (403, "webhook_key_missing"), (403, "invalid_signature"), (403, "webhook_key_missing")]
    assert consent(harness) == UNTOUCHED
    assert delivery(harness) == before


def test_signed_with_the_wrong_key_is_refused(harness, api, sent, webhook_keys):
    _, number, sid = sent.sms[0]
    form = {"MessageSid": str(sid), "MessageStatus": "failed", "ErrorCode": "21610", "To": number}
    wrong = {"X-Twilio-Signature": twilio_signature("guessed-token", TWILIO_URL, MultiDict(form))}
    assert api.post("/webhooks/twilio", data=form, headers=wrong).status_code == 403
    receipt = [{"outbox_id": sent.push[0][0], "status": "failed"}]
    assert api.post("/webhooks/push", json=receipt, headers={"Authorization": "Bearer guessed"}).status_code == 403
    assert consent(harness) == UNTOUCHED
    assert delivery(harness)["None"] == 3 * CUSTOMERS


# --------------------------------------------------------------------------- signed, but not about that message


def test_an_event_whose_address_is_not_the_messages_is_ignored(harness, api, sent, webhook_keys):
    other = email_event(sent, 0, "unsubscribe", harness, email="attacker@evil.example")
    answer = webhook_keys.post_sendgrid(api, [other], harness.clock.now())
    assert answer.get_json() == {"applied": 0, "ignored": 1, "duplicates": 0}
    _, _, sid = sent.sms[1]
    wrong_number = {"MessageSid": str(sid), "MessageStatus": "failed", "ErrorCode": "21610", "To": "+15559999999"}
    assert webhook_keys.post_twilio(api, wrong_number).get_json() == {"applied": 0, "ignored": 1, "duplicates": 0}
    assert consent(harness) == UNTOUCHED

    # the same reports with the addresses the messages went to
    right = email_event(sent, 0, "unsubscribe", harness)
    assert webhook_keys.post_sendgrid(api, [right], harness.clock.now()).get_json()["applied"] == 1
    assert webhook_keys.post_twilio(api, {**wrong_number, "To": sent.sms[1][1]}).get_json()["applied"] == 1
    assert consent(harness) == {"email_opt_out": 1, "email_bounced": 0, "sms_opt_out": 1}


def test_a_guessed_outbox_id_without_its_signature_is_ignored(harness, api, sent, webhook_keys):
    first, second = sent.email[0][0], sent.email[1][0]
    forged = [
        email_event(sent, 0, "unsubscribe", harness, cc_sig=sent.custom_args[second].get("cc_sig")),  # another id's
        email_event(sent, 1, "unsubscribe", harness, cc_sig="A" * 22),
        email_event(sent, 2, "unsubscribe", harness, cc_sig=None),
        email_event(sent, 3, "unsubscribe", harness, cc_outbox_id=str(first)),  # the address of another message
    ]
    answer = webhook_keys.post_sendgrid(api, forged, harness.clock.now())
    assert answer.get_json() == {"applied": 0, "ignored": 4, "duplicates": 0}
    assert consent(harness) == UNTOUCHED
    assert delivery(harness)["events"] == 0


def test_events_of_messages_sent_before_ids_were_signed_still_apply(harness, api, sent, webhook_keys):
    """A message sent by the previous release has no `cc_sig`: SendGrid's own signature on
    the webhook and the message's address vouch for it."""
    old = email_event(sent, 0, "open", harness)
    del old["cc_sig"]
    answer = webhook_keys.post_sendgrid(api, [old], harness.clock.now())
    assert answer.get_json() == {"applied": 1, "ignored": 0, "duplicates": 0}
    assert delivery(harness)["opened"] == 1


# --------------------------------------------------------------------------- the insecure setting


def test_the_insecure_setting_lets_unsigned_webhooks_in(harness, api, sent, no_keys, monkeypatch):
    monkeypatch.setenv(INSECURE, "1")
    # a Twilio provider config's auth token is a key: without one Twilio has none
    twilio_config = next(p for p in api.get("/api/providers").get_json()["items"] if p["kind"] == "twilio")
    assert api.delete(f"/api/providers/{twilio_config['id']}").status_code in (200, 204)
    _, number, sid = sent.sms[0]
    answers = [
        api.post("/webhooks/sendgrid", json=[email_event(sent, 0, "delivered", harness)]),
        api.post("/webhooks/twilio", data={"MessageSid": str(sid), "MessageStatus": "delivered", "To": number}),
        api.post("/webhooks/push", json=[{"outbox_id": sent.push[0][0], "status": "delivered"}]),
    ]
    assert [r.get_json() for r in answers] == [{"applied": 1, "ignored": 0, "duplicates": 0}] * 3
    assert delivery(harness)["delivered"] == 3

    # unsigned, events must prove their message: an id without its signature names nothing
    unsigned_ids = api.post("/webhooks/sendgrid", json=unsubscribe_everyone()[:100])
    assert unsigned_ids.get_json() == {"applied": 0, "ignored": 100, "duplicates": 0}
    assert consent(harness) == UNTOUCHED

    # a configured key is checked all the same
    monkeypatch.setenv("CC_PUSH_WEBHOOK_TOKEN", "push-secret")
    refused = api.post("/webhooks/push", json=[{"outbox_id": sent.push[1][0], "status": "failed"}])
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "invalid_signature"


@pytest.mark.processes
def test_servers_warn_at_start_up_while_unsigned_webhooks_are_allowed(database_url, redis_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_INSTANCE_DIR": str(tmp_path),
           "CC_QUEUE": f"warn-{uuid.uuid4().hex[:8]}", INSECURE: "1"}
    for name in KEY_SETTINGS:
        env.pop(name, None)
    warning = f"WARNING engine.web.api.webhooks: {INSECURE} is on: provider webhooks without a configured key"

    port = free_port()
    server = subprocess.Popen([CLI, "serve", "--port", str(port), "--workers", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: answering(f"http://127.0.0.1:{port}"), what="the server to answer")
    finally:
        output = stop(server)
    assert warning in output, output

    # the production app (engine/web/wsgi.py, as gunicorn imports it); no logging set up: stderr
    wsgi = subprocess.run([sys.executable, "-c", "import engine.web.wsgi"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert wsgi.returncode == 0, wsgi.stderr
    assert f"{INSECURE} is on: provider webhooks without a configured key are accepted UNSIGNED" in wsgi.stderr

    quiet = subprocess.run([sys.executable, "-c", "import engine.web.wsgi"], env={**env, INSECURE: ""},
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and INSECURE not in quiet.stderr, quiet.stderr
