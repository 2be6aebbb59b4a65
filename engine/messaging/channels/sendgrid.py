"""Email through SendGrid's v3 mail/send, with the official `sendgrid` SDK.

One request carries up to 1000 personalizations, one per message. Each message has its own
rendered body, so the request's shared content is just the substitution tags `-cc_text-` and
`-cc_html-` and every personalization substitutes its own text and html. SendGrid caps a
personalization's substitutions at 10,000 bytes: a message over that goes in a request of its
own with its literal content.

mail/send has no idempotency key. The outbox id travels in each personalization's
`custom_args` (`cc_outbox_id`, with `cc_batch`), so webhook events map back to their outbox row
and, after a crash, `accepted` can ask the Email Activity API which messages of a batch SendGrid
already has. Beside it goes `cc_sig`, the id's signature (engine/messaging/outbox_refs.py): an event
naming an id without it is not applied, so outbox ids cannot be guessed into webhooks.

The SDK's HTTP client (python_http_client, over urllib) connects through the outbound guard
(engine/messaging/outbound.py): an API host that is or resolves to an internal address is refused.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import re
import urllib.error
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import python_http_client
import sendgrid as sendgrid_sdk
from python_http_client.exceptions import HTTPError as SendGridHTTPError

from engine.messaging import outbound, outbox_refs
from engine.messaging.channels.base import (
    DEFAULT_TIMEOUT,
    TIMEOUT_SETTING,
    OutgoingMessage,
    Provider,
    SendResult,
    TransientError,
    provider_kinds,
)
from engine.messaging.channels.smtp import html_with_preheader

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.sendgrid.com"
HTML_TAG, TEXT_TAG = "-cc_html-", "-cc_text-"
#: SendGrid's limit on one personalization's substitutions (keys and values), in bytes
SUBSTITUTIONS_LIMIT = 10_000
#: rounds of "drop the personalizations a 400 names, resend the rest" before giving up
_MAX_400_ROUNDS = 5
_FIELD_INDEX = re.compile(r"^personalizations\.(\d+)\b")


class _RedactCredentials(logging.Filter):
    """The SDK's HTTP client logs every request's headers at DEBUG, Authorization included, and
    every payload (megabytes of customer content per batch). Redact the one, drop the other."""

    _bearer = re.compile(r"(Bearer|Basic)\s+[^'\"\s,}]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("PAYLOAD:"):
            return False
        redacted = self._bearer.sub(r"\1 [redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_sdk_logger = logging.getLogger("python_http_client.client")
if not any(isinstance(f, _RedactCredentials) for f in _sdk_logger.filters):
    _sdk_logger.addFilter(_RedactCredentials())


def _substitutions(message: OutgoingMessage) -> dict[str, str]:
    content = message.content
    return {
        TEXT_TAG: str(content.get("text") or ""),
        HTML_TAG: html_with_preheader(str(content.get("html") or ""), str(content.get("preheader") or "")),
    }


def _size(substitutions: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())


def _problem(message: OutgoingMessage) -> str | None:
    """Why SendGrid would refuse this message (and, worse, the whole request with it)."""
    if "@" not in (message.to or ""):
        return f"not an email address: {message.to!r}"
    if not str(message.content.get("subject") or "").strip():
        return "empty subject"
    if not (message.content.get("text") or message.content.get("html")):
        return "neither text nor html content"
    return None


def _error_text(exc: SendGridHTTPError) -> str:
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
    try:
        messages = [e.get("message") for e in json.loads(body).get("errors") or []]
        detail = "; ".join(str(m) for m in messages if m) or body
    except (ValueError, AttributeError):
        detail = body
    return f"SendGrid HTTP {exc.status_code}: {detail[:500]}"


def _bad_indexes(exc: SendGridHTTPError) -> set[int]:
    """Personalizations a 400 names in its `field`s (e.g. `personalizations.3.to.0.email`)."""
    try:
        errors = json.loads(exc.body).get("errors") or []
    except (ValueError, AttributeError, TypeError):
        return set()
    found = set()
    for error in errors:
        match = _FIELD_INDEX.match(str((error or {}).get("field") or ""))
        if match:
            found.add(int(match.group(1)))
    return found


def _is_retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class _GuardedClient(python_http_client.Client):
    """The SDK's HTTP client, opening its connections through the outbound guard. Each
    attribute step (`client.mail.send`) builds a new client, which must be guarded too."""

    def _build_client(self, name: str | None = None) -> _GuardedClient:
        return _GuardedClient(host=self.host, version=self._version, request_headers=self.request_headers,
                              url_path=[*self._url_path, name] if name else self._url_path,
                              append_slash=self.append_slash, timeout=self.timeout)

    def _make_request(self, opener: Any, request: Any, timeout: float | None = None) -> Any:
        return super()._make_request(outbound.url_opener(), request, timeout)


@provider_kinds.register
class SendGridEmail(Provider):
    """SendGrid v3 mail/send: one request per batch of up to 1000 messages."""

    kind = "sendgrid"
    channel = "email"
    label = "SendGrid"
    max_batch = 1000
    targets = ("host",)
    settings_schema = {
        "type": "object",
        "title": "SendGrid",
        "required": ["from_email"],
        "properties": {
            "from_email": {"type": "string", "title": "From address", "format": "email"},
            "from_name": {"type": "string", "title": "From name"},
            "reply_to": {"type": "string", "title": "Reply-To address", "format": "email"},
            "host": {"type": "string", "title": "API host", "default": DEFAULT_HOST, "pattern": "^https?://",
                     "description": "Leave empty for https://api.sendgrid.com (https://api.eu.sendgrid.com for EU)."},
            "timeout": TIMEOUT_SETTING,
            "activity_settle_seconds": {
                "type": "integer", "minimum": 0, "default": 900, "title": "Email Activity delay (seconds)",
                "description": "After a crash, a message the Email Activity API does not list is resent only "
                               "once this long has passed since the send (its data lags behind mail/send)."},
            "webhook_public_key": {"type": "string", "title": "Event Webhook verification key",
                                   "description": "The public key SendGrid shows for the signed Event Webhook."},
        },
        "additionalProperties": False,
    }
    secrets_schema = {
        "type": "object",
        "title": "SendGrid secrets",
        "required": ["api_key"],
        "properties": {"api_key": {"type": "string", "title": "API key",
                                   "description": "Needs Mail Send (and Email Activity read, for crash recovery)."}},
        "additionalProperties": False,
    }

    @property
    def accepted_settle(self) -> timedelta:
        return timedelta(seconds=int(self.settings.get("activity_settle_seconds", 900)))

    def _client(self) -> Any:
        """A fresh SDK client per call: its HTTP client mutates a shared headers dict, so one
        instance is not safe across threads; building one costs nothing."""
        client = sendgrid_sdk.SendGridAPIClient(api_key=str(self.secrets.get("api_key") or ""),
                                                host=str(self.settings.get("host") or DEFAULT_HOST).rstrip("/"))
        client.client = _GuardedClient(host=client.client.host, request_headers=client.client.request_headers,
                                       version=3, timeout=float(self.settings.get("timeout") or DEFAULT_TIMEOUT))
        return client

    def _envelope(self, first: OutgoingMessage, parts: list[dict[str, str]]) -> dict[str, Any]:
        sender: dict[str, str] = {"email": str(self.settings["from_email"])}
        from_name = first.content.get("from_name") or self.settings.get("from_name")
        if from_name:
            sender["name"] = str(from_name)
        body: dict[str, Any] = {"from": sender, "content": parts}
        if self.settings.get("reply_to"):
            body["reply_to"] = {"email": str(self.settings["reply_to"])}
        if first.category:
            body["categories"] = [first.category[:255]]
        return body

    @functools.cached_property
    def _ref_key(self) -> bytes:
        return outbox_refs.key()

    def _personalization(self, message: OutgoingMessage, batch_key: str) -> dict[str, Any]:
        return {
            "to": [{"email": message.to}],
            "subject": str(message.content.get("subject")),
            "custom_args": {"cc_outbox_id": str(message.outbox_id),
                            "cc_sig": outbox_refs.sign(message.outbox_id, self._ref_key), "cc_batch": batch_key},
        }

    def _requests(self, messages: list[OutgoingMessage], batch_key: str
                  ) -> Iterator[tuple[list[OutgoingMessage], dict[str, Any]]]:
        """(messages, mail/send body) pairs. Sender name, category and which parts exist are
        per request in SendGrid, so messages differing in those go in separate requests (in
        practice a batch is one campaign node: one request)."""
        groups: dict[tuple[str, str, bool, bool], list[OutgoingMessage]] = {}
        for message in messages:
            content = message.content
            key = (str(content.get("from_name") or ""), message.category,
                   bool(content.get("text")), bool(content.get("html")))
            groups.setdefault(key, []).append(message)

        for (_, _, has_text, has_html), group in groups.items():
            shared: list[tuple[OutgoingMessage, dict[str, str]]] = []
            alone: list[tuple[OutgoingMessage, dict[str, str]]] = []
            for message in group:
                subs = _substitutions(message)
                (alone if _size(subs) > SUBSTITUTIONS_LIMIT else shared).append((message, subs))
            if shared:
                parts = ([{"type": "text/plain", "value": TEXT_TAG}] if has_text else []) + (
                    [{"type": "text/html", "value": HTML_TAG}] if has_html else [])
                body = self._envelope(shared[0][0], parts)
                body["personalizations"] = [
                    {**self._personalization(m, batch_key),
                     "substitutions": {k: v for k, v in subs.items() if (k == TEXT_TAG and has_text)
                                       or (k == HTML_TAG and has_html)}}
                    for m, subs in shared]
                yield [m for m, _ in shared], body
            for message, subs in alone:
                parts = ([{"type": "text/plain", "value": subs[TEXT_TAG]}] if has_text else []) + (
                    [{"type": "text/html", "value": subs[HTML_TAG]}] if has_html else [])
                body = self._envelope(message, parts)
                body["personalizations"] = [self._personalization(message, batch_key)]
                yield [message], body

    def _post(self, client: Any, group: list[OutgoingMessage], body: dict[str, Any],
              rounds: int = _MAX_400_ROUNDS) -> list[SendResult]:
        """Send one request. A 400 that names particular personalizations (an address SendGrid
        refuses) fails just those and resends the rest: a 400 means nothing was sent."""
        try:
            response = client.client.mail.send.post(request_body=body)
        except SendGridHTTPError as exc:
            error = _error_text(exc)
            if _is_retryable(exc.status_code):
                return [SendResult(m.outbox_id, ok=False, transient=True, error=error) for m in group]
            bad = {i for i in _bad_indexes(exc) if i < len(group)} if exc.status_code == 400 else set()
            if not bad or len(bad) == len(group) or rounds <= 1:
                return [SendResult(m.outbox_id, ok=False, error=error) for m in group]
            keep = [i for i in range(len(group)) if i not in bad]
            rest = {**body, "personalizations": [body["personalizations"][i] for i in keep]}
            return ([SendResult(group[i].outbox_id, ok=False, error=error) for i in sorted(bad)]
                    + self._post(client, [group[i] for i in keep], rest, rounds - 1))
        except urllib.error.URLError as exc:  # urllib wraps failures up to sending the request
            error = f"SendGrid unreachable: {type(exc).__name__}: {exc}"
            return [SendResult(m.outbox_id, ok=False, transient=True, error=error) for m in group]
        except (OSError, http.client.HTTPException) as exc:  # no answer: it may have been accepted
            error = f"no answer from SendGrid: {type(exc).__name__}: {exc}"
            return [SendResult(m.outbox_id, ok=False, unknown=True, error=error) for m in group]
        message_id = response.headers.get("X-Message-Id")
        return [SendResult(m.outbox_id, ok=True,
                           provider_message_id=f"{message_id}:{m.outbox_id}" if message_id else None)
                for m in group]

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        results: list[SendResult] = []
        sendable = []
        for message in messages:
            problem = _problem(message)
            if problem:
                results.append(SendResult(message.outbox_id, ok=False, error=problem))
            else:
                sendable.append(message)

        client = self._client()
        for group, body in self._requests(sendable, batch_key):
            outcome = self._post(client, group, body)
            results.extend(outcome)
            # Stop at the first transient or unknown failure: the rest would hit the same wall.
            if any(r.transient or r.unknown for r in outcome):
                done = {r.outbox_id for r in results}
                error = next(r.error for r in outcome if r.transient or r.unknown)
                results.extend(SendResult(m.outbox_id, ok=False, transient=True, error=f"not attempted: {error}")
                               for m in sendable if m.outbox_id not in done)
                break
        if results and all(r.transient and not r.ok for r in results):
            raise TransientError(results[0].error or "SendGrid transient failure")
        return results

    def accepted(self, batch_key: str) -> set[int] | None:
        """Outbox ids of the batch SendGrid's Email Activity API knows about, or None.

        Caveats the dispatcher should weigh: the Activity API is a paid add-on, is rate limited
        (a few requests a minute) and lags behind mail/send by up to minutes, so a message
        missing here may still have been accepted. A message listed without our custom args
        cannot be attributed, which also answers None (cannot tell), never a guess.
        """
        query = f"unique_args['cc_batch']=\"{batch_key}\""
        try:
            response = self._client().client.messages.get(query_params={"limit": 1000, "query": query})
            listed = json.loads(response.body or b"{}").get("messages") or []
            ids: set[int] = set()
            for item in listed:
                args = item.get("unique_args") or {}
                if args.get("cc_batch", batch_key) != batch_key:
                    continue
                ids.add(int(args["cc_outbox_id"]))
            return ids
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot tell"
            log.warning("SendGrid activity query for batch %s failed: %s", batch_key, type(exc).__name__)
            return None
