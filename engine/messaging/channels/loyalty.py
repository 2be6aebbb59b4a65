"""A loyalty program's HTTP API: bonus points accrued to a customer's account.

Points are money-like: a double accrual is the failure to avoid. So an accrual goes through
the outbox like a message (one row per journey and node, written in the step's transaction),
and this provider gives the dispatcher both halves of its exactly-once rule:

- every accrual carries `Idempotency-Key: cc-<outbox id>` (and `idempotency_key` in the
  body), so a program that dedupes on it turns a retried call into a no-op;
- `accepted(batch_key)` asks the program which accruals of a batch it holds
  (`GET <url>?batch=<key>`), so after a dispatcher died mid-call recovery marks those sent
  and re-queues only the ones the program never got.

The program answers `POST <url>` with `{"id": "..."}` (2xx), and `GET <url>?batch=<key>` with
`{"items": [{"idempotency_key": "cc-12", ...}]}`.
"""

from __future__ import annotations

from typing import Any

import httpx

from engine.core import clock
from engine.messaging import outbound
from engine.messaging.channels.base import (
    TIMEOUT_SETTING,
    OutgoingMessage,
    Provider,
    SendResult,
    provider_kinds,
)
from engine.messaging.channels.webapi import (
    http_failure,
    network_failure,
    send_each,
    timeout_setting,
)


def idempotency_key(outbox_id: int) -> str:
    return f"cc-{outbox_id}"


@provider_kinds.register
class LoyaltyProgram(Provider):
    """POST each accrual to the program's accruals endpoint."""

    kind = "loyalty_http"
    channel = "loyalty"
    label = "Loyalty program (HTTP)"
    max_batch = 100
    targets = ("url",)
    settings_schema = {
        "type": "object",
        "title": "Loyalty program",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "title": "Accruals URL", "format": "uri", "pattern": "^https?://"},
            "timeout": TIMEOUT_SETTING,
        },
        "additionalProperties": False,
    }
    secrets_schema = {
        "type": "object",
        "title": "Loyalty program secrets",
        "properties": {"api_key": {"type": "string", "title": "API key", "description": "Sent as a Bearer token."}},
        "additionalProperties": False,
    }

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets['api_key']}"} if self.secrets.get("api_key") else {}

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        url = str(self.settings["url"])
        with outbound.http_client(timeout=timeout_setting(self.settings), headers=self._headers()) as client:
            def send_one(message: OutgoingMessage) -> SendResult:
                key = idempotency_key(message.outbox_id)
                try:
                    body = accrual(message, batch_key)
                except ValueError as exc:  # the rendered amount is not a number: retrying won't help
                    return SendResult(message.outbox_id, ok=False, error=str(exc))
                try:
                    response = client.post(url, json=body, headers={"Idempotency-Key": key})
                except httpx.HTTPError as exc:
                    return network_failure(message.outbox_id, exc)
                if not response.is_success:
                    return http_failure(message.outbox_id, response)
                try:
                    accrual_id = str(response.json()["id"])
                except (ValueError, KeyError, TypeError):
                    accrual_id = key  # accrued all the same: a 2xx is never sent again
                return SendResult(message.outbox_id, ok=True, provider_message_id=accrual_id)

            return send_each(messages, send_one)

    def accepted(self, batch_key: str) -> set[int] | None:
        try:
            with outbound.http_client(timeout=timeout_setting(self.settings), headers=self._headers()) as client:
                response = client.get(str(self.settings["url"]), params={"batch": batch_key})
            response.raise_for_status()
            items = response.json()["items"]
        except (httpx.HTTPError, outbound.OutboundRefused, ValueError, KeyError, TypeError):
            return None  # cannot tell now: recovery asks again later, never guesses
        keys = {str(item.get("idempotency_key", "")) for item in items if isinstance(item, dict)}
        return {int(k[3:]) for k in keys if k.startswith("cc-") and k[3:].isdigit()}


def accrual(message: OutgoingMessage, batch_key: str) -> dict[str, Any]:
    """The request body for one rendered accrual (amount, expiry, legal entity, description)."""
    content = message.content
    amount: Any = content.get("amount")
    try:
        points = float(amount) if not isinstance(amount, bool) else float("nan")
    except (TypeError, ValueError):
        raise ValueError(f"amount must be a number (got {amount!r})") from None
    if not points > 0:
        raise ValueError(f"amount must be more than 0 (got {amount!r})")
    body: dict[str, Any] = {
        "idempotency_key": idempotency_key(message.outbox_id), "batch": batch_key,
        "customer": message.to, "amount": int(points) if points.is_integer() else points,
        "legal_entity": content.get("legal_entity") or "", "description": content.get("description") or "",
    }
    if content.get("expires_in"):
        body["expires_at"] = clock.iso(clock.now() + clock.parse_duration(str(content["expires_in"])))
    return body

