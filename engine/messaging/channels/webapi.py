"""Generic web API calls (webhooks), and the one-request-per-message HTTP loop that the SMS
and push providers share.

A webhook has no batch endpoint and no way to tell us afterwards what it received, so every
call carries `Idempotency-Key: cc-<outbox id>`: a receiver that dedupes on it makes a retried
call harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

from engine.messaging import outbound
from engine.messaging.channels.base import (
    DEFAULT_TIMEOUT,
    TIMEOUT_SETTING,
    OutgoingMessage,
    Provider,
    SendResult,
    TransientError,
    provider_kinds,
)

#: statuses worth retrying: rate limited, or the far side is having a bad time
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def send_each(messages: Iterable[OutgoingMessage],
              send_one: Callable[[OutgoingMessage], SendResult]) -> list[SendResult]:
    """Send messages one request at a time.

    After a transient failure (429, 5xx, network) the rest of the batch is not attempted:
    the provider is rate limiting us or struggling, and hammering it makes both worse. Those
    messages get transient results (nothing was sent for them, a retry is safe). When the very
    first message fails transiently nothing at all was sent, so the whole batch raises
    TransientError as the Provider contract asks.
    """
    pending = list(messages)
    results: list[SendResult] = []
    for index, message in enumerate(pending):
        result = send_one(message)
        results.append(result)
        if (result.transient or result.unknown) and not result.ok:
            if index == 0 and result.transient:
                raise TransientError(result.error or "transient failure")
            results.extend(SendResult(m.outbox_id, ok=False, transient=True,
                                      error=f"not attempted after a failure: {result.error}")
                           for m in pending[index + 1:])
            break
    return results


def response_error(response: httpx.Response, limit: int = 500) -> str:
    """A short error text for a failed response: status plus the start of the body (which
    providers fill with their own explanation; never our request headers)."""
    text = response.text.strip().replace("\n", " ")
    retry_after = response.headers.get("Retry-After")
    suffix = f" (Retry-After: {retry_after})" if retry_after else ""
    return f"HTTP {response.status_code}: {text[:limit]}{suffix}"


def http_failure(outbox_id: int, response: httpx.Response, error: str | None = None) -> SendResult:
    """The SendResult for a non-2xx response: transient for 408/425/429/5xx, final otherwise."""
    return SendResult(outbox_id, ok=False, error=error or response_error(response),
                      transient=is_retryable(response.status_code))


#: failures before the request left: nothing reached the provider, a retry is safe
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def network_failure(outbox_id: int, exc: Exception) -> SendResult:
    """Could not connect: transient (retry). Anything later (no answer, reset mid-answer) may
    have reached the provider: unknown, settled by recovery instead of a blind retry. Only the
    exception class and message are kept: httpx names the URL, never headers or credentials."""
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NOT_SENT):
        return SendResult(outbox_id, ok=False, transient=True, error=error)
    return SendResult(outbox_id, ok=False, unknown=True, error=error)


def post_for_result(client: httpx.Client, url: str, outbox_id: int, *, id_field: str,
                    describe_error: Callable[[httpx.Response], str], **request: Any) -> SendResult:
    """One POST for one message, its answer as a SendResult: the provider's id read from the
    JSON answer (a 2xx with an unreadable body was still sent: never resend it), errors mapped
    to transient / final / unknown."""
    try:
        response = client.post(url, **request)
    except httpx.HTTPError as exc:
        return network_failure(outbox_id, exc)
    if not response.is_success:
        return http_failure(outbox_id, response, describe_error(response))
    try:
        provider_id = response.json()[id_field]
    except (ValueError, KeyError, TypeError):
        provider_id = None
    return SendResult(outbox_id, ok=True, provider_message_id=provider_id)


def timeout_setting(settings: dict[str, Any]) -> float:
    try:
        value = float(settings.get("timeout") or DEFAULT_TIMEOUT)
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


@provider_kinds.register
class WebhookCall(Provider):
    """POST (or PUT/PATCH) each message's JSON body to a configured URL."""

    kind = "webhook"
    channel = "webapi"
    label = "Webhook (HTTP call)"
    max_batch = 100
    targets = ("url",)
    settings_schema = {
        "type": "object",
        "title": "Webhook",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "title": "URL", "format": "uri", "pattern": "^https?://"},
            "method": {"type": "string", "title": "Method", "enum": ["POST", "PUT", "PATCH"], "default": "POST"},
            "headers": {"type": "object", "title": "Headers", "additionalProperties": {"type": "string"},
                        "description": "Sent with every call. Put credentials in the secret headers instead."},
            "timeout": TIMEOUT_SETTING,
        },
        "additionalProperties": False,
    }
    secrets_schema = {
        "type": "object",
        "title": "Webhook secrets",
        "properties": {
            "bearer_token": {"type": "string", "title": "Bearer token",
                             "description": "Sent as 'Authorization: Bearer <token>'."},
            "secret_headers": {"type": "object", "title": "Secret headers", "additionalProperties": {"type": "string"},
                        "description": "Header values kept secret, e.g. an API key header."},
        },
        "additionalProperties": False,
    }

    def _headers(self, outbox_id: int) -> dict[str, str]:
        headers = {str(k): str(v) for k, v in (self.settings.get("headers") or {}).items()}
        headers.update({str(k): str(v) for k, v in (self.secrets.get("secret_headers") or {}).items()})
        if self.secrets.get("bearer_token"):
            headers["Authorization"] = f"Bearer {self.secrets['bearer_token']}"
        headers["Idempotency-Key"] = f"cc-{outbox_id}"
        return headers

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        method = str(self.settings.get("method") or "POST").upper()
        if method not in ("POST", "PUT", "PATCH"):
            return [SendResult(m.outbox_id, ok=False, error=f"unsupported method {method}") for m in messages]
        url = str(self.settings["url"])

        with outbound.http_client(timeout=timeout_setting(self.settings)) as client:
            def send_one(message: OutgoingMessage) -> SendResult:
                try:
                    response = client.request(method, url, json=message.content.get("body"),
                                              headers=self._headers(message.outbox_id))
                except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:  # configuration: retrying won't help
                    return SendResult(message.outbox_id, ok=False, error=f"bad webhook URL: {exc}")
                except (TypeError, ValueError) as exc:  # the body is not JSON-serializable
                    return SendResult(message.outbox_id, ok=False, error=f"body is not JSON: {exc}")
                except httpx.HTTPError as exc:
                    return network_failure(message.outbox_id, exc)
                if response.is_success:
                    request_id = response.headers.get("X-Request-Id") or f"cc-{message.outbox_id}"
                    return SendResult(message.outbox_id, ok=True, provider_message_id=request_id)
                return http_failure(message.outbox_id, response)

            return send_each(messages, send_one)
