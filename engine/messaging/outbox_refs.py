"""Signed outbox references: the id a provider carries out with a message and back to us.

SendGrid's Event Webhook names the message an event is about by the custom arguments we
sent with it (`cc_outbox_id`). Outbox ids count up from 1, so an id alone is a guess away
from every message we ever sent: one forged POST of `unsubscribe` events with ids 1..10,000
opted every customer out. So each id travels with `cc_sig`, an HMAC-SHA256 of it under a key
derived from the instance's secret key (CC_SECRET_KEY, engine/core/config.py), and a webhook event
is applied only when the two agree (engine/messaging/delivery.py). Nobody without the secret can name
a message, however many ids they try.

The key is derived (HMAC of a fixed label) rather than the secret itself, so a signature
made here can never pass for a login session or the other way round. Every process that
sends (dispatchers) and every server that takes webhooks must share the secret key: the
same CC_SECRET_KEY everywhere, or one instance folder.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

from engine.core.config import Settings, secret_key

#: what the derived key is for; a new version here invalidates every reference in flight
_PURPOSE = b"campaign-canvas outbox reference v1"
#: bytes of the HMAC kept: 128 bits, 22 characters of base64url
_LENGTH = 16


def key(settings: Settings | None = None) -> bytes:
    """The signing key of this instance (from `settings`, else from the environment)."""
    return _derive(secret_key(settings or Settings()))


@functools.lru_cache(maxsize=8)
def _derive(secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()


def sign(outbox_id: int, signing_key: bytes) -> str:
    """The reference signature of `outbox_id` (22 URL-safe characters)."""
    digest = hmac.new(signing_key, str(outbox_id).encode("ascii"), hashlib.sha256).digest()[:_LENGTH]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(outbox_id: int, signature: object, signing_key: bytes) -> bool:
    """Whether `signature` is the one `sign` gives `outbox_id` (in constant time)."""
    if not isinstance(signature, str) or not signature.isascii():
        return False
    return hmac.compare_digest(sign(outbox_id, signing_key), signature)
