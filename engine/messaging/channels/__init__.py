"""Channels and their providers: how a rendered message leaves the building.

A provider kind (SendGrid, SMTP, Twilio-style SMS, FCM-style push, a generic webhook) is one
class declaring its settings and secrets schemas and two operations: `send` a batch, and
`accepted` (which messages of a batch the provider already has, when it can tell; the
dispatcher asks after a crash, so a message is never sent twice).

Every kind connects through the outbound guard (engine/messaging/outbound.py): its `targets` settings
may not point at internal addresses, checked when a config is saved and again on the address
each connection actually goes to.
"""

from engine.messaging.channels import loyalty, push, sendgrid, sms, smtp, webapi  # noqa: F401  (each registers its kind)
from engine.messaging.channels.base import (
    CHANNELS,
    DEFAULT_TIMEOUT,
    TIMEOUT_SETTING,
    OutgoingMessage,
    Provider,
    ProviderKinds,
    SendResult,
    TransientError,
    provider_kinds,
)

__all__ = [
    "CHANNELS", "DEFAULT_TIMEOUT", "TIMEOUT_SETTING", "OutgoingMessage", "Provider", "ProviderKinds", "SendResult",
    "TransientError", "provider_kinds",
]
