"""Provider webhooks: delivery reports that SendGrid, Twilio and push receipts post to us.

Providers call these, so they take no API key; instead each request must carry the
provider's own signature, checked against the configured key. Without a key configured a
webhook is refused (403), not trusted: anyone could post one, and a single anonymous POST
of unsubscribe events would opt every customer out. A rejected or malformed request changes
nothing (JSON error, never a 500 on junk). Accepted reports are applied in one transaction
by `engine.messaging.delivery`, which also checks that each names its message provably (a signed
outbox reference and the right address); the answer is the counts it returns.

Keys (each read at every request, so a new one works without a restart):
- CC_SENDGRID_WEBHOOK_PUBLIC_KEY: SendGrid's signed Event Webhook verification key (the
  base64 ECDSA P-256 public key SendGrid shows); also read from `webhook_public_key` in the
  settings or secrets of every sendgrid provider config.
- CC_TWILIO_AUTH_TOKEN: the Twilio auth token checking `X-Twilio-Signature` (HMAC-SHA1);
  also read from the `auth_token` secret of every twilio provider config.
- CC_PUSH_WEBHOOK_TOKEN: push receipts carry `Authorization: Bearer <token>`.

CC_INSECURE_ALLOW_UNSIGNED_WEBHOOKS=1 (local development only) accepts a provider's webhooks
unsigned while no key is configured for it; a configured key is always checked. SendGrid
events must still carry their signed outbox references. `serve` and engine/web/wsgi.py log a
warning at start-up while it is on (`warn_if_insecure`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.core import clock, db, json_input
from engine.core.errors import CampaignCanvasError, InvalidInput
from engine.core.models import ProviderConfig
from engine.messaging import delivery, outbox_refs
from engine.web.api import runtime
from engine.web.declare import accepts, responds

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

#: a signed payload older than this is refused. Wide on purpose: SendGrid retries failed
#: webhook deliveries for up to a day, and applying events is idempotent, so a replay changes
#: nothing; the window only bounds how long a captured payload stays usable.
REPLAY_WINDOW = timedelta(hours=24)
#: a timestamp ahead of our clock by more than ordinary clock skew is refused
FUTURE_SKEW = timedelta(minutes=5)


#: the setting that lets unsigned webhooks in while no key is configured
INSECURE_SETTING = "CC_INSECURE_ALLOW_UNSIGNED_WEBHOOKS"


class SignatureInvalid(CampaignCanvasError):
    """The request does not carry a valid signature of the configured provider key."""

    code = "invalid_signature"
    status = 403


class WebhookKeyMissing(SignatureInvalid):
    """No key is configured to check this provider's signature, so nothing it posts can be
    trusted. (SendGrid retries refused deliveries for a day: once the key is set, they land.)"""

    code = "webhook_key_missing"


def insecure() -> bool:
    """Whether the operator lets unsigned webhooks in (for local development)."""
    return os.environ.get(INSECURE_SETTING, "").strip().lower() in ("1", "true", "yes")


def warn_if_insecure() -> None:
    """At start-up of a server: say loudly that forged delivery reports would be taken."""
    if insecure():
        log.warning("%s is on: provider webhooks without a configured key are accepted UNSIGNED; anyone who can "
                    "reach this server can post forged bounces, opens and SMS or push receipts. Never use it in "
                    "production: configure CC_SENDGRID_WEBHOOK_PUBLIC_KEY, CC_TWILIO_AUTH_TOKEN and "
                    "CC_PUSH_WEBHOOK_TOKEN instead.", INSECURE_SETTING)


def _unconfigured(provider: str, keys: str) -> None:
    """Refuse a provider's webhook for want of a key, unless unsigned ones are allowed."""
    if not insecure():
        raise WebhookKeyMissing(f"{provider} webhooks are refused: no verification key is configured ({keys}); "
                                f"{INSECURE_SETTING}=1 accepts unsigned ones for local development only")


@bp.post("/sendgrid")
@accepts("SendGridEvents", checked=False)  # the signature is checked before the body is read
@responds(200, security=[{"sendgridSignature": []}, {}])
def sendgrid() -> ResponseReturnValue:
    raw = request.get_data()
    configured, keys = _sendgrid_keys()
    if configured:
        _verify_sendgrid(raw, keys)
    else:
        _unconfigured("SendGrid", "CC_SENDGRID_WEBHOOK_PUBLIC_KEY, or webhook_public_key in a SendGrid provider config")
    events = _json(raw)
    if not isinstance(events, list):
        raise _invalid("the SendGrid Event Webhook body is a JSON array of events")
    signing_key = outbox_refs.key(runtime().settings)
    with db.transaction(runtime().sessions) as session:
        counts = delivery.apply_email_events(session, events, clock.now(), signing_key=signing_key,
                                             signed_webhook=configured)
    return jsonify(counts)


@bp.post("/twilio")
@accepts("TwilioStatus", media_type="application/x-www-form-urlencoded", checked=False)
@responds(200, security=[{"twilioSignature": []}, {}])
def twilio() -> ResponseReturnValue:
    form = request.form
    tokens = _twilio_tokens()
    if tokens:
        _verify_twilio(tokens, form)
    else:
        _unconfigured("Twilio", "CC_TWILIO_AUTH_TOKEN, or the auth_token of a Twilio provider config")
    sid, status = form.get("MessageSid"), form.get("MessageStatus")
    if not sid or not status:
        raise _invalid("a Twilio status callback carries MessageSid and MessageStatus (form-encoded)")
    with db.transaction(runtime().sessions) as session:
        counts = delivery.apply_sms_status(session, sid, status, clock.now(), to=form.get("To"),
                                           error_code=form.get("ErrorCode"))
    return jsonify(counts)


@bp.post("/push")
@accepts("PushReceipts", checked=False)
@responds(200, security=[{"pushToken": []}, {}])
def push() -> ResponseReturnValue:
    token = os.environ.get("CC_PUSH_WEBHOOK_TOKEN", "")
    if token:
        _verify_bearer(token)
    else:
        _unconfigured("Push receipt", "CC_PUSH_WEBHOOK_TOKEN")
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
    texts: list[Any] = [os.environ.get("CC_SENDGRID_WEBHOOK_PUBLIC_KEY", "")]
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
    tokens: list[Any] = [os.environ.get("CC_TWILIO_AUTH_TOKEN", "")]
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
    if not _same(request.headers.get("Authorization", ""), f"Bearer {token}"):
        raise SignatureInvalid("missing or wrong bearer token")


def _same(a: str, b: str) -> bool:
    """Constant-time comparison; as bytes, since compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def _configs(kind: str) -> list[ProviderConfig]:
    with runtime().sessions() as session:
        return list(session.scalars(select(ProviderConfig).where(ProviderConfig.kind == kind)))


def _json(raw: bytes) -> Any:
    """The parsed body (engine.core.json_input's limits), or InvalidInput: never a 500."""
    try:
        return json_input.loads(raw)
    except ValueError:
        raise _invalid("the body is not valid JSON") from None


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, [{"pointer": "", "message": message}])
