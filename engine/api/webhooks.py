"""Provider webhooks: delivery reports that SendGrid, Twilio and push receipts post to us.

Providers call these, so they take no API key; instead each request is checked against the
provider's own signature whenever a key is configured, and a rejected or malformed request
changes nothing (JSON error, never a 500 on junk). Accepted reports are applied in one
transaction by `engine.delivery`; the answer is the counts it returns.

Configuration (all optional; without a key a webhook is accepted unsigned):
- CC_SENDGRID_WEBHOOK_PUBLIC_KEY: SendGrid's signed-webhook verification key (base64, as
  SendGrid shows it); also read from `webhook_public_key` in the settings or secrets of every
  sendgrid provider config.
- CC_TWILIO_AUTH_TOKEN: the Twilio auth token checking `X-Twilio-Signature`; also read from
  the `auth_token` secret of every twilio provider config.
- CC_PUSH_WEBHOOK_TOKEN: push receipts must then carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify, request
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine import clock, db, delivery
from engine.api import runtime
from engine.api.declare import accepts, responds
from engine.errors import CampaignCanvasError, InvalidInput
from engine.models import ProviderConfig

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

#: a signed payload older than this is refused. Wide on purpose: SendGrid retries failed
#: webhook deliveries for up to a day, and applying events is idempotent, so a replay changes
#: nothing; the window only bounds how long a captured payload stays usable.
REPLAY_WINDOW = timedelta(hours=24)
#: a timestamp ahead of our clock by more than ordinary clock skew is refused
FUTURE_SKEW = timedelta(minutes=5)


class SignatureInvalid(CampaignCanvasError):
    """The request does not carry a valid signature of the configured provider key."""

    code = "invalid_signature"
    status = 403


@bp.post("/sendgrid")
@accepts("SendGridEvents", checked=False)  # the signature is checked before the body is read
@responds(200, security=[{"sendgridSignature": []}, {}])
def sendgrid():  # type: ignore[no-untyped-def]
    raw = request.get_data()
    configured, keys = _sendgrid_keys()
    if configured:
        _verify_sendgrid(raw, keys)
    events = _json(raw)
    if not isinstance(events, list):
        raise _invalid("the SendGrid Event Webhook body is a JSON array of events")
    with db.transaction(runtime().sessions) as session:
        counts = delivery.apply_email_events(session, events, clock.now())
    return jsonify(counts)


@bp.post("/twilio")
@accepts("TwilioStatus", media_type="application/x-www-form-urlencoded", checked=False)
@responds(200, security=[{"twilioSignature": []}, {}])
def twilio():  # type: ignore[no-untyped-def]
    form = request.form
    tokens = _twilio_tokens()
    if tokens:
        _verify_twilio(tokens, form)
    sid, status = form.get("MessageSid"), form.get("MessageStatus")
    if not sid or not status:
        raise _invalid("a Twilio status callback carries MessageSid and MessageStatus (form-encoded)")
    with db.transaction(runtime().sessions) as session:
        counts = delivery.apply_sms_status(session, sid, status, clock.now(), error_code=form.get("ErrorCode"))
    return jsonify(counts)


@bp.post("/push")
@accepts("PushReceipts", checked=False)
@responds(200, security=[{"pushToken": []}, {}])
def push():  # type: ignore[no-untyped-def]
    _verify_bearer(os.environ.get("CC_PUSH_WEBHOOK_TOKEN", ""))
    data = _json(request.get_data())
    receipts = [data] if isinstance(data, dict) else data
    if not isinstance(receipts, list):
        raise _invalid('a push receipt is {"message_id" or "outbox_id", "status"}, or a JSON array of them')
    with db.transaction(runtime().sessions) as session:
        counts = delivery.apply_push_receipts(session, receipts, clock.now())
    return jsonify(counts)


# --------------------------------------------------------------------------- SendGrid


def _sendgrid_keys() -> tuple[bool, list[Any]]:
    """(whether any key is configured, the ones that load). Every configured key is tried,
    so several SendGrid accounts (or a key rotation) can post to one endpoint; a configured
    key that does not load is logged and rejects everything rather than nothing."""
    texts = [os.environ.get("CC_SENDGRID_WEBHOOK_PUBLIC_KEY", "")]
    for config in _configs("sendgrid"):
        texts += [config.settings.get("webhook_public_key"), config.secrets.get("webhook_public_key")]
    texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    keys = []
    for text in texts:
        try:
            keys.append(EventWebhook().convert_public_key_to_ecdsa(text))
        except (ValueError, TypeError):
            log.error("a configured SendGrid webhook public key is not a valid base64 EC public key")
    return bool(texts), keys


def _verify_sendgrid(raw: bytes, keys: list[Any]) -> None:
    """SendGrid signs timestamp + raw body (ECDSA P-256, SHA-256, base64 DER)."""
    signature = request.headers.get(EventWebhookHeader.SIGNATURE, "")
    timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP, "")
    if not signature or not timestamp:
        raise SignatureInvalid("missing SendGrid signature headers")
    _check_fresh(timestamp)
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureInvalid("the body is not UTF-8, so it cannot carry a valid signature") from None
    verifier = EventWebhook()
    for key in keys:
        try:
            if verifier.verify_signature(payload, signature, timestamp, public_key=key):
                return
        except (ValueError, TypeError):  # a signature that is not base64 / DER at all
            break
    raise SignatureInvalid("the SendGrid signature does not match the body")


def _check_fresh(timestamp: str) -> None:
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        raise SignatureInvalid("the signature timestamp is not a unix time") from None
    if not -FUTURE_SKEW <= clock.now() - signed_at <= REPLAY_WINDOW:
        raise SignatureInvalid("the signature timestamp is older than a day or ahead of our clock (replay?)")


# --------------------------------------------------------------------------- Twilio


def _twilio_tokens() -> list[str]:
    tokens = [os.environ.get("CC_TWILIO_AUTH_TOKEN", "")]
    tokens += [config.secrets.get("auth_token") for config in _configs("twilio")]
    return [t for t in tokens if isinstance(t, str) and t]


def twilio_signature(token: str, url: str, params: MultiDict[str, str]) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 (key: the auth token) of the full URL
    followed by every POST parameter name and value, sorted by name."""
    data = url + "".join(name + value for name in sorted(set(params.keys()))
                         for value in sorted(set(params.getlist(name))))
    digest = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _verify_twilio(tokens: list[str], params: MultiDict[str, str]) -> None:
    """Twilio signs the URL it called; behind a TLS-terminating proxy we see http://, so the
    https:// spelling of the same URL is accepted too (the HMAC still needs the token)."""
    given = request.headers.get("X-Twilio-Signature", "")
    urls = {request.url, "https://" + request.url.split("://", 1)[-1]}
    for token in tokens:
        for url in urls:
            if given and _same(twilio_signature(token, url, params), given):
                return
    raise SignatureInvalid("missing or wrong X-Twilio-Signature")


# --------------------------------------------------------------------------- shared


def _verify_bearer(token: str) -> None:
    if token and not _same(request.headers.get("Authorization", ""), f"Bearer {token}"):
        raise SignatureInvalid("missing or wrong bearer token")


def _same(a: str, b: str) -> bool:
    """Constant-time comparison; as bytes, since compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def _configs(kind: str) -> list[ProviderConfig]:
    with runtime().sessions() as session:
        return list(session.scalars(select(ProviderConfig).where(ProviderConfig.kind == kind)))


def _json(raw: bytes) -> Any:
    """The parsed body, or InvalidInput (deep nesting included: never a 500)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _invalid("the body is not valid JSON") from None


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, [{"pointer": "", "message": message}])
