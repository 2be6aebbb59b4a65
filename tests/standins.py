"""Real servers on 127.0.0.1 standing in for the providers (SendGrid, Twilio, FCM, a webhook
receiver, an SMTP relay), so tests exercise the real SDKs and HTTP clients end to end.

Each stand-in starts serving when constructed (on a free port, `.url`) and stops on `close()`
or at the end of a `with` block. They record what arrived, answer like the real API (status
codes and error bodies included), and take injected faults:

- `fail_next(n, status, ...)`: the next n requests are answered with an API-shaped error;
  `accept=True` processes the request first (the provider has it, the client hears an error).
- `disconnect_next(n)`: the next n requests get the connection closed without an answer.
- `delay` (seconds, settable any time): each request is processed, then the answer waits;
  a client killed meanwhile leaves the provider holding a message the client never heard
  about. `delay_before` waits before processing instead (the provider has nothing).
- `wait_for_requests(n)`: block until n requests arrived (to kill a sender mid-call).

All of them are thread-safe: servers answer on their own threads.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import secrets as secrets_module
import socket
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

#: the stand-ins listen on loopback, which the outbound guard refuses unless allowed
#: (engine/messaging/outbound.py): the test suite and the benchmarks allow this much, and no more
LOOPBACK_ALLOW = "127.0.0.1/32,::1/128"

EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")


@dataclass
class Recorded:
    """One HTTP request as it arrived, and the status it was answered with (0: no answer)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), default)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """The url-encoded form body (last value wins)."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass
class _Fault:
    count: int
    status: int = 500
    path: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    accept: bool = False
    disconnect: bool = False
    after: int = 0


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list (sent as JSON), bytes, str or None
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: headers and body go out as two writes: with Nagle's algorithm the body of each answer on
    #: a kept-alive connection waited for the client's delayed ACK, 40 ms per request
    disable_nagle_algorithm = True
    server: _Server

    def _any(self) -> None:
        self.server.standin._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:  # quiet tests
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: HTTPStandIn


class HTTPStandIn:
    """Base of the HTTP stand-ins: a ThreadingHTTPServer on 127.0.0.1, recording, faults."""

    def __init__(self, *, delay: float = 0.0, delay_before: float = 0.0):
        self.delay = delay
        self.delay_before = delay_before
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._requests: list[Recorded] = []
        self._faults: list[_Fault] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what arrived ----------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Every request received, in arrival order (faulted ones too, with their status)."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least `count` requests arrived; False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._requests) >= count, timeout)

    def reset(self) -> None:
        """Forget recorded requests (and subclasses' records) and pending faults."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    # -- faults ----------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, *, path: str | None = None, body: Any = None,
                  headers: dict[str, str] | None = None, accept: bool = False, after: int = 0) -> None:
        """Answer the next n requests (whose path starts with `path`, if given; skipping the
        first `after` of them) with `status` and an API-shaped error body (or `body`). With
        accept=True the request is processed first: the provider keeps it although the client
        hears a failure."""
        with self._lock:
            self._faults.append(_Fault(n, status, path, body, dict(headers or {}), accept, after=after))

    def disconnect_next(self, n: int = 1, *, path: str | None = None, after: int = 0) -> None:
        """Close the connection of the next n requests without answering (a network error)."""
        with self._lock:
            self._faults.append(_Fault(n, 0, path, disconnect=True, after=after))

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count > 0 and (fault.path is None or path.startswith(fault.path)):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- for subclasses --------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        """Process a request like the real API would and answer it."""
        return Reply(404, {"error": "not found"})

    def error_body(self, status: int) -> Any:
        """The API's error body for an injected failure."""
        return {"error": {"code": status, "message": "injected failure"}}

    # -- serving ---------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Recorded(handler.command, split.path, parse_qs(split.query, keep_blank_values=True),
                           dict(handler.headers.items()), body)
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()

        if self.delay_before:
            self._stopping.wait(self.delay_before)
        fault = self._take_fault(split.path)
        if fault and fault.disconnect:
            handler.close_connection = True
            return
        try:
            reply = self.handle(request) if fault is None or fault.accept else None
        except Exception as exc:  # noqa: BLE001 - a bug in a stand-in answers 500, loudly
            reply = Reply(500, {"error": f"stand-in error: {type(exc).__name__}: {exc}"})
        if fault is not None:
            reply = Reply(fault.status, fault.body if fault.body is not None else self.error_body(fault.status),
                          fault.headers)
        assert reply is not None
        if self.delay:
            self._stopping.wait(self.delay)
        request.status = reply.status
        self._write(handler, reply)

    @staticmethod
    def _write(handler: _Handler, reply: Reply) -> None:
        if isinstance(reply.body, (dict, list)):
            payload, ctype = json.dumps(reply.body).encode(), "application/json"
        elif isinstance(reply.body, str):
            payload, ctype = reply.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, ctype = reply.body or b"", "application/json"
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client went away (or was killed)
            handler.close_connection = True


def _bearer(request: Recorded) -> str | None:
    value = request.header("Authorization") or ""
    return value[7:] if value.startswith("Bearer ") else None


# ---------------------------------------------------------------------------------------------
# SendGrid


def _substitute(text: str, substitutions: dict[str, str]) -> str:
    """Apply substitutions in one pass (a value containing another tag is left alone)."""
    if not substitutions or not text:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(substitutions, key=len, reverse=True)))
    return pattern.sub(lambda m: substitutions[m.group(0)], text)


def _json_size(mapping: dict[str, Any]) -> int:
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in mapping.items())


class SendGridStandIn(HTTPStandIn):
    """SendGrid v3: POST /v3/mail/send and the Email Activity API's GET /v3/messages.

    mail/send validates like SendGrid (Bearer key, 1..1000 personalizations and recipients,
    valid addresses, from, subject, content, 10,000-byte substitutions and custom_args per
    personalization, at most 10 categories) and answers 202 with `X-Message-Id`, or 400 with
    `{"errors": [{"message", "field", "help"}]}` naming e.g. `personalizations.3.to.0.email`.
    """

    def __init__(self, api_key: str = "SG.standin-test-key", **kwargs: Any):
        self.api_key = api_key
        self._deliveries: list[dict[str, Any]] = []
        self._accepted_sizes: list[int] = []
        super().__init__(**kwargs)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """SendGridEmail settings pointing at this stand-in."""
        return {"from_email": "news@example.com", "from_name": "Campaign Canvas", "host": self.url, **overrides}

    def secrets(self) -> dict[str, Any]:
        return {"api_key": self.api_key}

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """One dict per accepted recipient: to, subject, html, text, custom_args, categories,
        from_email, from_name, reply_to, message_id (the request's X-Message-Id), msg_id."""
        with self._lock:
            return [dict(d) for d in self._deliveries]

    @property
    def batch_sizes(self) -> list[int]:
        """Personalizations per accepted mail/send request, in arrival order."""
        with self._lock:
            return list(self._accepted_sizes)

    @property
    def mail_requests(self) -> list[Recorded]:
        """The POST /v3/mail/send requests received (any answer)."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v3/mail/send"]

    def accepted_ids(self, batch_key: str | None = None) -> set[int]:
        """cc_outbox_id of every accepted delivery (of one batch, if given)."""
        return {int(d["custom_args"]["cc_outbox_id"]) for d in self.deliveries
                if "cc_outbox_id" in d["custom_args"]
                and (batch_key is None or d["custom_args"].get("cc_batch") == batch_key)}

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._deliveries.clear()
            self._accepted_sizes.clear()

    def error_body(self, status: int) -> Any:
        text = {429: "too many requests", 401: "The provided authorization grant is invalid, expired, or revoked"}
        return {"errors": [{"message": text.get(status, "internal error"), "field": None, "help": None}]}

    def handle(self, request: Recorded) -> Reply:
        if _bearer(request) != self.api_key:
            return Reply(401, self.error_body(401))
        if request.method == "POST" and request.path == "/v3/mail/send":
            return self._mail_send(request)
        if request.method == "GET" and request.path == "/v3/messages":
            return self._activity(request)
        return Reply(404, {"errors": [{"message": "not found", "field": None, "help": None}]})

    def _mail_send(self, request: Recorded) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return Reply(400, {"errors": [{"message": "Bad Request", "field": None, "help": None}]})
        errors = self._validate(body if isinstance(body, dict) else {})
        if errors:
            return Reply(400, {"errors": [{"message": m, "field": f, "help": None} for f, m in errors]})

        message_id = secrets_module.token_urlsafe(16)[:22]
        sender = body["from"]
        deliveries = []
        for p_index, personalization in enumerate(body["personalizations"]):
            subs = personalization.get("substitutions") or {}
            subject = _substitute(personalization.get("subject") or body.get("subject") or "", subs)
            parts = {c["type"]: _substitute(c["value"], subs) for c in body["content"]}
            custom_args = {**(body.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
            for kind in ("to", "cc", "bcc"):
                for r_index, recipient in enumerate(personalization.get(kind) or []):
                    deliveries.append({
                        "to": recipient["email"], "subject": subject,
                        "html": parts.get("text/html"), "text": parts.get("text/plain"),
                        "custom_args": custom_args, "categories": list(body.get("categories") or []),
                        "from_email": sender["email"], "from_name": sender.get("name"),
                        "reply_to": (body.get("reply_to") or {}).get("email"),
                        "message_id": message_id, "msg_id": f"{message_id}.filter{p_index}.{kind}{r_index}",
                        "accepted_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    })
        with self._lock:
            self._deliveries.extend(deliveries)
            self._accepted_sizes.append(len(body["personalizations"]))
        return Reply(202, None, {"X-Message-Id": message_id})

    @staticmethod
    def _validate(body: dict[str, Any]) -> list[tuple[str | None, str]]:
        errors: list[tuple[str | None, str]] = []
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list) or not 1 <= len(personalizations) <= 1000:
            errors.append(("personalizations", "The personalizations field is required and must have at least "
                           "one personalization (and at most 1000)."))
            personalizations = []
        sender = body.get("from")
        if not isinstance(sender, dict) or not EMAIL_RE.match(str(sender.get("email") or "")):
            errors.append(("from.email", "The from object must be provided for every email send. "
                           "It is an object that requires the email parameter, but may also contain a name "
                           "parameter."))
        recipients = 0
        for i, p in enumerate(personalizations):
            if not isinstance(p, dict) or not p.get("to"):
                errors.append((f"personalizations.{i}.to", "The to array is required for all personalization "
                               "objects, and must have at least one email object with a valid email address."))
                continue
            for kind in ("to", "cc", "bcc"):
                for j, r in enumerate(p.get(kind) or []):
                    recipients += 1
                    if not EMAIL_RE.match(str((r or {}).get("email") or "")):
                        errors.append((f"personalizations.{i}.{kind}.{j}.email", "Does not contain a valid address."))
            if not (p.get("subject") or body.get("subject")) and not body.get("template_id"):
                errors.append((f"personalizations.{i}.subject", "The subject is required. You can get around this "
                               "requirement if you use a template with a subject defined."))
            for name in ("substitutions", "custom_args"):
                values = p.get(name) or {}
                if any(not isinstance(v, str) for v in values.values()):
                    errors.append((f"personalizations.{i}.{name}", f"{name} values must be strings."))
                elif _json_size(values) > 10_000:
                    errors.append((f"personalizations.{i}.{name}", f"The {name} in a personalization must not "
                                   "exceed 10,000 bytes."))
        if recipients > 1000:
            errors.append(("personalizations", "The total number of recipients must be no more than 1000."))
        content = body.get("content")
        if not body.get("template_id"):
            if not isinstance(content, list) or not content or any(
                    not isinstance(c, dict) or not c.get("type") or not c.get("value") for c in content):
                errors.append(("content", "Unless a valid template_id is provided, the content parameter is "
                               "required. There must be at least one defined content block."))
            elif "text/plain" in [c["type"] for c in content] and content[0]["type"] != "text/plain":
                errors.append(("content", "If present, text/plain content must be first, followed by any other "
                               "content."))
        categories = body.get("categories") or []
        if len(categories) > 10 or any(len(str(c)) > 255 for c in categories):
            errors.append(("categories", "Categories: at most 10, each at most 255 characters."))
        return errors

    _CLAUSE = re.compile(r"""(\w+)(?:\[['"](\w+)['"]\])?\s*=\s*"([^"]*)\"""")

    def _activity(self, request: Recorded) -> Reply:
        """GET /v3/messages?limit=&query=: clauses `field="value"` or `unique_args['k']="v"`
        joined with AND (the subset of the query language our code uses)."""
        try:
            limit = int((request.query.get("limit") or ["0"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return Reply(400, {"errors": [{"message": "limit must be between 1 and 1000", "field": "limit"}]})
        query = (request.query.get("query") or [""])[0]
        clauses = [self._CLAUSE.fullmatch(part.strip()) for part in re.split(r"\s+AND\s+", query) if part.strip()]
        if any(c is None for c in clauses):
            return Reply(400, {"errors": [{"message": "invalid query", "field": "query"}]})

        def matches(d: dict[str, Any]) -> bool:
            for clause in clauses:
                assert clause is not None
                name, key, value = clause.groups()
                actual = d["custom_args"].get(key) if name == "unique_args" else d.get(name)
                if str(actual) != value:
                    return False
            return True

        found = [d for d in self.deliveries if matches(d)][:limit]
        return Reply(200, {"messages": [
            {"from_email": d["from_email"], "msg_id": d["msg_id"], "subject": d["subject"], "to_email": d["to"],
             "status": "delivered", "opens_count": 0, "clicks_count": 0, "last_event_time": d["accepted_at"],
             "unique_args": d["custom_args"]} for d in found]})


# ---------------------------------------------------------------------------------------------
# Twilio


class TwilioStandIn(HTTPStandIn):
    """Twilio Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json, basic auth sid:token,
    answers 201 with the message resource or Twilio's `{"code", "message", "more_info",
    "status"}` errors (21211 invalid To, 21602 no Body, 21603 no From, 20003 auth)."""

    def __init__(self, account_sid: str = "AC" + "0" * 31 + "1", auth_token: str = "twilio-standin-token",
                 **kwargs: Any):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._messages: list[dict[str, Any]] = []
        self._rejected: dict[str, tuple[int, int, str]] = {}
        super().__init__(**kwargs)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "from_number": "+15550001111", "base_url": self.url, **overrides}

    def secrets(self) -> dict[str, Any]:
        return {"auth_token": self.auth_token}

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages: sid, to, from, body, status_callback, messaging_service_sid."""
        with self._lock:
            return [dict(m) for m in self._messages]

    def reject(self, number: str, *, status: int = 400, code: int = 21610,
               message: str = "Attempt to send to unsubscribed recipient") -> None:
        """Answer every message to `number` with this Twilio error."""
        with self._lock:
            self._rejected[number] = (status, code, message)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._messages.clear()
            self._rejected.clear()

    @staticmethod
    def _error(status: int, code: int, message: str) -> Reply:
        return Reply(status, {"code": code, "message": message, "status": status,
                              "more_info": f"https://www.twilio.com/docs/errors/{code}"})

    def error_body(self, status: int) -> Any:
        code, text = (20429, "Too Many Requests") if status == 429 else (20500, "Internal Server Error")
        return self._error(status, code, text).body

    def handle(self, request: Recorded) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.header("Authorization") != expected:
            return self._error(401, 20003, "Authenticate")
        if request.method != "POST" or request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return self._error(404, 20404, f"The requested resource {request.path} was not found")
        form = request.form()
        to, sender, text = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        service = form.get("MessagingServiceSid", "")
        if not E164_RE.match(to):
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not sender and not service:
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not text:
            return self._error(400, 21602, "Message body is required.")
        if len(text) > 1600:
            return self._error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        with self._lock:
            rejected = self._rejected.get(to)
        if rejected:
            return self._error(*rejected)
        sid = "SM" + uuid.uuid4().hex
        resource = {"sid": sid, "account_sid": self.account_sid, "to": to, "from": sender or None,
                    "messaging_service_sid": service or None, "body": text, "status": "queued",
                    "num_segments": str(max(1, -(-len(text) // 153))), "direction": "outbound-api",
                    "date_created": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
                    "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
                    "error_code": None, "error_message": None}
        with self._lock:
            self._messages.append({"sid": sid, "to": to, "from": sender or None, "body": text,
                                   "status_callback": form.get("StatusCallback"),
                                   "messaging_service_sid": service or None})
        return Reply(201, resource)


# ---------------------------------------------------------------------------------------------
# FCM

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_FCM_CODE = {400: "INVALID_ARGUMENT", 403: "SENDER_ID_MISMATCH", 404: "UNREGISTERED", 429: "QUOTA_EXCEEDED",
             500: "INTERNAL", 503: "UNAVAILABLE"}


def _fcm_error(status: int, message: str, error_code: str | None = None) -> Reply:
    error: dict[str, Any] = {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}
    code = error_code or _FCM_CODE.get(status)
    if code:
        error["details"] = [{"@type": _FCM_ERROR_TYPE, "errorCode": code}]
    return Reply(status, {"error": error})


class FCMStandIn(HTTPStandIn):
    """FCM HTTP v1: POST /v1/projects/{project}/messages:send with a Bearer token; answers
    `{"name": "projects/{p}/messages/{id}"}`, or Google's error shape with an FcmError detail
    (UNREGISTERED 404 for tokens passed to `unregister`, INVALID_ARGUMENT 400 for bad input)."""

    def __init__(self, project_id: str = "cc-standin", server_key: str = "fcm-standin-key", **kwargs: Any):
        self.project_id = project_id
        self.server_key = server_key
        self._messages: list[dict[str, Any]] = []
        self._unregistered: set[str] = set()
        super().__init__(**kwargs)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"project_id": self.project_id, "base_url": self.url, **overrides}

    def secrets(self) -> dict[str, Any]:
        return {"server_key": self.server_key}

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages: name, token, notification, data."""
        with self._lock:
            return [dict(m) for m in self._messages]

    def unregister(self, *tokens: str) -> None:
        """These tokens answer 404 UNREGISTERED from now on (the app was uninstalled)."""
        with self._lock:
            self._unregistered.update(tokens)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._messages.clear()
            self._unregistered.clear()

    def error_body(self, status: int) -> Any:
        return _fcm_error(status, "injected failure").body

    def handle(self, request: Recorded) -> Reply:
        if _bearer(request) != self.server_key:
            return _fcm_error(401, "Request had invalid authentication credentials.", "THIRD_PARTY_AUTH_ERROR")
        if request.method != "POST" or request.path != f"/v1/projects/{self.project_id}/messages:send":
            return _fcm_error(404, f"Not found: {request.path}", "SENDER_ID_MISMATCH")
        try:
            message = request.json()["message"]
        except (ValueError, KeyError, TypeError):
            return _fcm_error(400, "Invalid JSON payload received.")
        token = message.get("token")
        if not isinstance(token, str) or not token:
            return _fcm_error(400, "Recipient of the message is not set.")
        data = message.get("data") or {}
        if not isinstance(data, dict) or any(not isinstance(v, str) for v in data.values()):
            return _fcm_error(400, "Invalid value at 'message.data': values must be strings.")
        notification = message.get("notification") or {}
        if any(not isinstance(v, str) or v == "" for v in notification.values()):
            return _fcm_error(400, "Invalid value at 'message.notification'.")
        with self._lock:
            if token in self._unregistered:
                return _fcm_error(404, "Requested entity was not found.", "UNREGISTERED")
            name = f"projects/{self.project_id}/messages/0:{uuid.uuid4().int % 10**16}%{uuid.uuid4().hex[:16]}"
            self._messages.append({"name": name, "token": token, "notification": notification, "data": data})
        return Reply(200, {"name": name})


# ---------------------------------------------------------------------------------------------
# Webhook receiver


class WebhookStandIn(HTTPStandIn):
    """A webhook receiver that dedupes on `Idempotency-Key` like a careful API would: a repeat
    of a key it already answered with 2xx gets the same answer and is not processed again.
    Any method and path are accepted with `status` (default 200)."""

    def __init__(self, *, status: int = 200, **kwargs: Any):
        self.status = status
        self._calls: list[Recorded] = []
        self._answered: dict[str, Reply] = {}
        super().__init__(**kwargs)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"url": f"{self.url}/hook", "method": "POST", **overrides}

    @property
    def calls(self) -> list[Recorded]:
        """Requests processed (a repeated Idempotency-Key is not processed twice)."""
        with self._lock:
            return list(self._calls)

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._calls.clear()
            self._answered.clear()

    def error_body(self, status: int) -> Any:
        return {"error": "injected failure", "status": status}

    def handle(self, request: Recorded) -> Reply:
        key = request.header("Idempotency-Key")
        with self._lock:
            if key and key in self._answered:
                return self._answered[key]
            self._calls.append(request)
            reply = Reply(self.status, {"received": True} if self.status < 400 else {"error": "refused"},
                          {"X-Request-Id": uuid.uuid4().hex})
            if key and 200 <= self.status < 300:
                self._answered[key] = reply
            return reply


# ---------------------------------------------------------------------------------------------
# SMTP


class _Controller(Controller):
    """aiosmtpd's Controller bound to port 0: it learns its real port before its self-test."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class _SMTPFault:
    count: int
    code: int
    stage: str
    text: str


class SMTPStandIn:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that records every message it accepts.

    `messages`: dicts with mail_from, rcpt_tos, to, subject, text, html, headers (dict),
    message_id, outbox_id (from X-CC-Outbox-Id, int or None), raw (bytes).
    `users={"name": "password"}` enables AUTH (LOGIN/PLAIN, allowed without TLS);
    `require_auth=True` refuses mail from unauthenticated sessions. `connections` counts
    sessions that sent mail. Faults: `fail_next(n, code, stage="rcpt"|"mail"|"data")`
    answers the next n commands of that stage with `code`; `reject(address, code)` refuses a
    recipient every time.
    """

    def __init__(self, *, users: dict[str, str] | None = None, require_auth: bool = False):
        self.users = dict(users or {})
        self.require_auth = require_auth
        self._lock = threading.RLock()
        self._messages: list[dict[str, Any]] = []
        self._sessions: list[Any] = []
        self._faults: list[_SMTPFault] = []
        self._rejected: dict[str, tuple[int, str]] = {}
        kwargs: dict[str, Any] = {}
        if self.users:
            # AUTH without TLS on loopback; "required" is enforced in handle_MAIL (aiosmtpd warns
            # about auth_required without TLS).
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _Controller(self, hostname="127.0.0.1", port=0, **kwargs)
        self._controller.start()
        self.host = "127.0.0.1"
        self.port: int = self._controller.port
        self.url = f"smtp://{self.host}:{self.port}"

    def close(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """SMTPEmail settings pointing at this stand-in (no STARTTLS)."""
        return {"host": self.host, "port": self.port, "from_email": "news@example.com",
                "from_name": "Campaign Canvas", "starttls": False, **overrides}

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._messages]

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._sessions)

    def fail_next(self, n: int = 1, code: int = 451, *, stage: str = "rcpt", text: str | None = None) -> None:
        assert stage in ("mail", "rcpt", "data")
        with self._lock:
            self._faults.append(_SMTPFault(n, code, stage, text or ("4.3.0 Try again later" if code < 500
                                                                      else "5.7.1 Rejected")))

    def reject(self, address: str, code: int = 550, text: str = "5.1.1 User unknown") -> None:
        with self._lock:
            self._rejected[address.lower()] = (code, text)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._sessions.clear()
            self._faults.clear()
            self._rejected.clear()

    def _fault(self, stage: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.stage == stage and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return f"{fault.code} {fault.text}"
        return None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # aiosmtpd handler hooks (coroutines run on the controller's event loop)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        with self._lock:
            if not any(s is session for s in self._sessions):
                self._sessions.append(session)
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        failure = self._fault("mail")
        if failure:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        failure = self._fault("rcpt")
        if failure:
            return failure
        with self._lock:
            rejected = self._rejected.get(address.lower())
        if rejected:
            return f"{rejected[0]} {rejected[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        failure = self._fault("data")
        if failure:
            return failure
        raw: bytes = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        text_part = parsed.get_body(preferencelist=("plain",))
        html_part = parsed.get_body(preferencelist=("html",))
        outbox = parsed.get("X-CC-Outbox-Id")
        with self._lock:
            self._messages.append({
                "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "to": str(parsed.get("To", "")), "subject": str(parsed.get("Subject", "")),
                "text": text_part.get_content() if text_part is not None else None,
                "html": html_part.get_content() if html_part is not None else None,
                "headers": {k: str(v) for k, v in parsed.items()},
                "message_id": str(parsed.get("Message-ID", "")),
                "outbox_id": int(outbox) if outbox and str(outbox).isdigit() else None,
                "raw": raw,
            })
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A port nothing listens on (for connection-refused tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = ["FCMStandIn", "HTTPStandIn", "Recorded", "Reply", "SMTPStandIn", "SendGridStandIn", "TwilioStandIn",
           "WebhookStandIn", "free_port"]


# ---------------------------------------------------------------------------------------------
# A loyalty program


class LoyaltyStandIn(HTTPStandIn):
    """A loyalty program's accruals API: `POST /accruals` (Bearer key) books an accrual once
    per idempotency key (a repeated key answers the booking it already has, as real programs
    do), `GET /accruals?batch=<key>` lists the accruals of a dispatcher batch."""

    def __init__(self, api_key: str = "loyalty-standin-key", **kwargs: Any):
        self.api_key = api_key
        self._accruals: dict[str, dict[str, Any]] = {}
        self.posts: Counter[str] = Counter()
        super().__init__(**kwargs)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"url": f"{self.url}/accruals", **overrides}

    def secrets(self) -> dict[str, Any]:
        return {"api_key": self.api_key}

    @property
    def accruals(self) -> list[dict[str, Any]]:
        """Booked accruals, one per idempotency key, in booking order."""
        with self._lock:
            return [dict(a) for a in self._accruals.values()]

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._accruals.clear()
            self.posts.clear()

    def handle(self, request: Recorded) -> Reply:
        if _bearer(request) != self.api_key:
            return Reply(401, {"error": "bad api key"})
        if request.path != "/accruals":
            return Reply(404, {"error": f"no such path {request.path}"})
        if request.method == "GET":
            batch = (request.query.get("batch") or [""])[0]
            with self._lock:
                return Reply(200, {"items": [a for a in self._accruals.values() if a.get("batch") == batch]})
        try:
            body = request.json()
            key = request.header("Idempotency-Key") or body["idempotency_key"]
            assert isinstance(body["amount"], (int, float)) and body["amount"] > 0
        except (ValueError, KeyError, TypeError, AssertionError):
            return Reply(400, {"error": "an accrual needs an idempotency key and a positive amount"})
        with self._lock:
            self.posts[key] += 1
            booked = self._accruals.setdefault(key, {**body, "id": f"acc-{len(self._accruals) + 1}"})
        return Reply(201, {"id": booked["id"]})
