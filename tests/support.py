"""Small builders the engine tests share: documents, profiles, and reading results back."""

from __future__ import annotations

import base64
import calendar
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, insert, select
from werkzeug.datastructures import MultiDict

from engine.core.counters import node_stats
from engine.core.models import Enrollment, Profile
from engine.journeys import campaigns
from engine.messaging import outbox_refs
from engine.ops import auth
from engine.web.api.webhooks import twilio_signature


class TickingClock:
    """A clock that runs at the wall clock's pace from a chosen start: for code that expects
    time to pass between its steps (as on the system clock), without depending on today's
    date, which a test's virtual clock would place in its past or its future."""

    def __init__(self, start: datetime):
        self._start, self._began = start, time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._began)


def doc(nodes: list[tuple[str, str, dict[str, Any]]], edges: list[tuple[str, str, str]], **extra: Any) -> dict:
    """A document from (id, type, settings) nodes and (source, port, target) edges."""
    return {
        "name": extra.pop("name", "Test campaign"),
        "nodes": [{"id": i, "type": t, "settings": s, "position": {"x": 0, "y": 80 * n}}
                  for n, (i, t, s) in enumerate(nodes)],
        "edges": [{"id": f"e{n}", "source": s, "source_port": p, "target": t} for n, (s, p, t) in enumerate(edges)],
        **extra,
    }


def add_profiles(session, count: int, **fields: Any) -> list[int]:
    rows = [{"external_id": f"p{i}", "email": f"p{i}@example.com", "attributes": {}, "push_tokens": [],
             "points": 0, **{k: (v(i) if callable(v) else v) for k, v in fields.items()}} for i in range(count)]
    return list(session.scalars(insert(Profile).returning(Profile.id, sort_by_parameter_order=True), rows))


def launch(h, document: dict) -> int:
    """Create and launch a campaign, then run whatever is due now. Returns the campaign id."""
    with h.transaction() as session:
        campaign = campaigns.create(session, document)
        campaigns.launch(session, campaign.id, h.clock.now())
    h.machine.run_due()
    return campaign.id


def stats(h, campaign_id: int) -> dict[str, dict[str, Any]]:
    with h.session() as session:
        return node_stats(session, campaign_id)


def positions(h, campaign_id: int) -> dict[tuple[str, str], int]:
    """(node, state) -> how many enrollments are there."""
    with h.session() as session:
        rows = session.execute(
            select(Enrollment.node_id, Enrollment.state, func.count())
            .where(Enrollment.campaign_id == campaign_id)
            .group_by(Enrollment.node_id, Enrollment.state)
        )
        return {(n, s): c for n, s, c in rows}


def points(h) -> dict[int, int]:
    with h.session() as session:
        return dict(session.execute(select(Profile.id, Profile.points)).all())


def snapshot(h) -> dict[str, list[tuple]]:
    """Every row of every table, to show a refused request changed nothing."""
    from engine.core.models import Base

    with h.session() as session:
        return {table.name: sorted(map(tuple, session.execute(select(table))), key=repr)
                for table in Base.metadata.sorted_tables}


def authed_client(app, h, role: str = "admin"):
    """A Flask test client sending `Authorization: Bearer <key>` for a new key of `role`."""
    client = app.test_client()
    with h.transaction() as session:
        _row, key = auth.create_api_key(session, f"test {role}", role)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def ok(response, status: int = 200):
    """The JSON answer of a request that must have succeeded with `status`."""
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def error_of(response, status: int, code: str) -> dict:
    """The error of a refused request, checked to have the API's error shape."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.content_type
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return error


def email_provider(h, sendgrid) -> None:
    """Make the SendGrid stand-in the default email provider."""
    from engine.messaging import providers

    with h.transaction() as s:
        providers.create_provider(s, {"channel": "email", "kind": "sendgrid", "name": "SendGrid",
                                      "settings": sendgrid.settings(activity_settle_seconds=0),
                                      "secrets": sendgrid.secrets()})


def at_once(count: int, call: Any) -> list[Any]:
    """Run `call()` in `count` threads released together (a race, on purpose); their results,
    in finishing order. An exception in a thread fails the test, naming it."""
    import threading

    barrier, results, failures = threading.Barrier(count), [], []

    def run() -> None:
        try:
            barrier.wait()
            results.append(call())
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == [], failures
    return results


# --------------------------------------------------------------------------- signed webhooks

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
#: the URL a Flask test client's request has, which Twilio would have signed
TWILIO_URL = "http://localhost/webhooks/twilio"


def unix(when: datetime) -> int:
    return calendar.timegm(when.timetuple())


class SendGridSigner:
    """A SendGrid account's signed Event Webhook: a P-256 key pair whose public half,
    `public`, is what SendGrid shows (base64 DER SubjectPublicKeyInfo), and SendGrid's
    signature headers for a body: base64 DER ECDSA-SHA256 of the timestamp + the raw body."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signature = self.private.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SENDGRID_SIGNATURE: base64.b64encode(signature).decode(), SENDGRID_TIMESTAMP: str(timestamp)}


def sendgrid_event(kind: str, outbox_id: int | None, email: str, at: datetime, *, sig: str | None = None,
                   **extra: Any) -> dict[str, Any]:
    """A SendGrid event as the Event Webhook posts it: our custom args (strings, at the top
    level) with the id's signature, made with this process's key unless `sig` is given (the
    one a stand-in recorded, for a server with another instance folder)."""
    item = {"email": email, "timestamp": unix(at), "event": kind, "sg_event_id": f"ev-{kind}-{outbox_id}",
            "sg_message_id": f"msg{outbox_id}.filter0001", **extra}
    if outbox_id is not None:
        item.update(cc_outbox_id=str(outbox_id), cc_batch="batch-1",
                    cc_sig=sig if sig is not None else outbox_refs.sign(outbox_id, outbox_refs.key()))
    return item


@dataclass
class WebhookKeys:
    """Every provider's webhook key, configured in the environment (the `webhook_keys`
    fixture), and requests signed with them as each provider signs."""

    sendgrid: SendGridSigner = field(default_factory=SendGridSigner)
    twilio_token: str = "twilio-test-token"
    push_token: str = "push-test-token"

    def environment(self) -> dict[str, str]:
        return {"CC_SENDGRID_WEBHOOK_PUBLIC_KEY": self.sendgrid.public, "CC_TWILIO_AUTH_TOKEN": self.twilio_token,
                "CC_PUSH_WEBHOOK_TOKEN": self.push_token}

    def post_sendgrid(self, client, events: Any, at: datetime, body: bytes | None = None):
        """POST a signed Event Webhook (`events` as JSON, or the raw `body`), signed at `at`."""
        raw = json.dumps(events).encode() if body is None else body
        return client.post("/webhooks/sendgrid", data=raw, headers=self.sendgrid.headers(raw, unix(at)),
                           content_type="application/json")

    def post_twilio(self, client, form: dict[str, str], url: str = TWILIO_URL, token: str | None = None):
        """POST a status callback with Twilio's X-Twilio-Signature for `url`."""
        signature = twilio_signature(token or self.twilio_token, url, MultiDict(form))
        return client.post("/webhooks/twilio", data=form, headers={"X-Twilio-Signature": signature})

    def post_push(self, client, receipts: Any):
        return client.post("/webhooks/push", json=receipts, headers={"Authorization": f"Bearer {self.push_token}"})


def make_world(api, harness) -> dict[str, Any]:
    """One of everything through the API, and the path parameter values that name them:
    for tests that call every operation, so paths reach real objects as well as missing ones."""
    with harness.transaction() as s:
        profile_id = add_profiles(s, 3)[0]
    campaign = doc([("all", "select_segment", {"source": "all"}), ("pts", "award_points", {"points": 1})],
                   [("all", "out", "pts")], name="World")
    campaign_id = api.post("/api/campaigns", json=campaign).get_json()["id"]
    api.post("/api/campaigns?launch=true", json={**campaign, "name": "Running"})
    segment = api.post("/api/segments", json={"name": "Rich", "rules": {"match": "all", "rules": [
        {"field": "points", "op": "gte", "value": 10}]}}).get_json() or {}
    audience = api.post("/api/audiences", json={"name": "Fans"}).get_json() or {}
    template = api.post("/api/templates", json={"channel": "email", "name": "Hello", "content": {
        "subject": "Hi", "text": "Hello"}}).get_json() or {}
    api.post("/api/events", json={"event": "signup", "profile": {"external_id": "p1"}})
    poll = api.post("/api/polls", json={"name": "World poll", "questions": [
        {"id": "q", "text": "Q?", "answers": [{"id": "a", "text": "A"}]}]}).get_json() or {}
    with harness.transaction() as s:
        user = auth.create_user(s, "someone", "long enough", "viewer")
        key, _secret = auth.create_api_key(s, "other", "viewer")
        ids = {"user_id": user.id, "key_id": key.id}
    return {"campaign_id": campaign_id, "profile_id": profile_id, "segment_id": segment.get("id", 1),
            "audience_id": audience.get("id", 1), "template_id": template.get("id", 1), "provider_id": 1,
            "notification_id": 1, "number": 1, "name": "signup", "action": "pause", "import_id": 1,
            "type_name": "ab_test", "poll_id": poll.get("id", 1), **ids}
