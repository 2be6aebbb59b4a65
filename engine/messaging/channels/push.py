"""Push notifications through the FCM HTTP v1 API (or anything speaking it).

FCM v1 sends one message per request. A token FCM reports as UNREGISTERED (the app was
uninstalled) will never work again, so that is a final failure with a recognizable text the
dispatcher can use to forget the token.
"""

from __future__ import annotations

import json
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

DEFAULT_BASE_URL = "https://fcm.googleapis.com"
UNREGISTERED = "unregistered token"


def fcm_error(response: httpx.Response) -> str:
    """The error text for a failed FCM response; exactly UNREGISTERED for a dead token."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return response_error(response)
    codes = {d.get("errorCode") for d in error.get("details") or [] if isinstance(d, dict)}
    if "UNREGISTERED" in codes:
        return UNREGISTERED
    code = next(iter(codes - {None}), None) or error.get("status")
    return f"HTTP {response.status_code}: {code}: {error.get('message')}"


def fcm_payload(message: OutgoingMessage) -> dict[str, Any]:
    """The v1 `message`: FCM rejects empty notification fields and non-string data values,
    so empty fields are left out and data values are stringified (JSON for structures)."""
    content = message.content
    notification = {k: str(content[k]) for k in ("title", "body", "image") if content.get(k)}
    data = {str(k): v if isinstance(v, str) else json.dumps(v)
            for k, v in (content.get("data") or {}).items()}
    payload: dict[str, Any] = {"token": message.to}
    if notification:
        payload["notification"] = notification
    if data:
        payload["data"] = data
    return {"message": payload}


@provider_kinds.register
class FCMPush(Provider):
    """One POST to /v1/projects/{project_id}/messages:send per message."""

    kind = "fcm"
    channel = "push"
    label = "Firebase Cloud Messaging"
    max_batch = 100
    targets = ("base_url",)
    settings_schema = {
        "type": "object",
        "title": "Firebase Cloud Messaging",
        "required": ["project_id"],
        "properties": {
            "project_id": {"type": "string", "title": "Firebase project id", "minLength": 1},
            "base_url": {"type": "string", "title": "API base URL", "default": DEFAULT_BASE_URL,
                         "pattern": "^https?://"},
            "timeout": TIMEOUT_SETTING,
        },
        "additionalProperties": False,
    }
    secrets_schema = {
        "type": "object",
        "title": "FCM secrets",
        "required": ["server_key"],
        "properties": {"server_key": {"type": "string", "title": "Access token",
                                      "description": "Sent as 'Authorization: Bearer <token>'."}},
        "additionalProperties": False,
    }

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        base = str(self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        url = f"{base}/v1/projects/{self.settings['project_id']}/messages:send"
        headers = {"Authorization": f"Bearer {self.secrets.get('server_key') or ''}"}

        with outbound.http_client(timeout=timeout_setting(self.settings), headers=headers) as client:
            def send_one(message: OutgoingMessage) -> SendResult:
                if not message.to:
                    return SendResult(message.outbox_id, ok=False, error="no push token")
                return post_for_result(client, url, message.outbox_id, id_field="name", describe_error=fcm_error,
                                       json=fcm_payload(message))

            return send_each(messages, send_one)
