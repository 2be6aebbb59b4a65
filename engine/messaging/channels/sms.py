"""SMS through Twilio's Messages API (or anything speaking it, such as a test stand-in).

Twilio has no batch send and no idempotency key, so each message is one form POST; a batch
only shares one HTTP connection. The message SID Twilio answers with is what its status
callbacks quote, so it becomes the provider message id.
"""

from __future__ import annotations

from typing import Any

import httpx

from engine.messaging import outbound
from engine.messaging.channels.base import (
    TIMEOUT_SETTING,
    OutgoingMessage,
    Provider,
    SendResult,
    provider_kinds,
)
from engine.messaging.channels.webapi import (
    post_for_result,
    response_error,
    send_each,
    timeout_setting,
)

DEFAULT_BASE_URL = "https://api.twilio.com"


def _twilio_error(response: httpx.Response) -> str:
    """Twilio's JSON errors carry a numeric code (e.g. 21211 invalid 'To') worth keeping."""
    try:
        body = response.json()
        return f"HTTP {response.status_code}: Twilio error {body.get('code')}: {body.get('message')}"
    except (ValueError, AttributeError):
        return response_error(response)


@provider_kinds.register
class TwilioSMS(Provider):
    """One POST to /2010-04-01/Accounts/{sid}/Messages.json per message, basic auth sid:token."""

    kind = "twilio"
    channel = "sms"
    label = "Twilio SMS"
    max_batch = 100
    targets = ("base_url",)
    settings_schema = {
        "type": "object",
        "title": "Twilio SMS",
        "required": ["account_sid", "from_number"],
        "properties": {
            "account_sid": {"type": "string", "title": "Account SID", "pattern": "^AC"},
            "from_number": {"type": "string", "title": "From number",
                            "description": "E.164 number (+15551234567) or a Messaging Service SID (MG...)."},
            "base_url": {"type": "string", "title": "API base URL", "default": DEFAULT_BASE_URL,
                         "pattern": "^https?://"},
            "status_callback": {"type": "string", "title": "Status callback URL", "pattern": "^https?://"},
            "timeout": TIMEOUT_SETTING,
        },
        "additionalProperties": False,
    }
    secrets_schema = {
        "type": "object",
        "title": "Twilio secrets",
        "required": ["auth_token"],
        "properties": {"auth_token": {"type": "string", "title": "Auth token"}},
        "additionalProperties": False,
    }

    def _form(self, message: OutgoingMessage) -> dict[str, Any]:
        sender = str(self.settings["from_number"])
        form = {"To": message.to, "Body": str(message.content.get("body") or "")}
        # A Messaging Service SID goes in its own field; Twilio then picks the sender number.
        form["MessagingServiceSid" if sender.startswith("MG") else "From"] = sender
        if self.settings.get("status_callback"):
            form["StatusCallback"] = str(self.settings["status_callback"])
        return form

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        sid = str(self.settings["account_sid"])
        base = str(self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        url = f"{base}/2010-04-01/Accounts/{sid}/Messages.json"
        auth = httpx.BasicAuth(sid, str(self.secrets.get("auth_token") or ""))

        with outbound.http_client(timeout=timeout_setting(self.settings), auth=auth) as client:
            def send_one(message: OutgoingMessage) -> SendResult:
                if not message.content.get("body"):
                    return SendResult(message.outbox_id, ok=False, error="empty SMS body")
                return post_for_result(client, url, message.outbox_id, id_field="sid", describe_error=_twilio_error,
                                       data=self._form(message))

            return send_each(messages, send_one)
