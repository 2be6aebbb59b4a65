"""Email over SMTP: any relay (a company mail server, Postfix, an ESP's SMTP endpoint).

A batch shares one SMTP connection (connect, STARTTLS and AUTH once). SMTP reply codes say
whether trying again can help: 4xx is temporary (greylisting, mailbox busy, rate limits),
5xx is permanent. A connection that cannot be opened fails the whole batch transiently.
SMTP cannot tell us afterwards what it accepted, so `accepted` stays None.
"""

from __future__ import annotations

import html as html_lib
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

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

_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_PREHEADER_STYLE = ("display:none!important;visibility:hidden;mso-hide:all;font-size:1px;line-height:1px;"
                    "max-height:0;max-width:0;opacity:0;overflow:hidden")


def html_with_preheader(html: str, preheader: str) -> str:
    """The html with the preheader as a hidden span first in the body: inbox previews show it,
    the reader does not. Shared by the email providers."""
    if not preheader or not html:
        return html
    span = f'<span style="{_PREHEADER_STYLE}">{html_lib.escape(preheader)}</span>'
    match = _BODY_TAG.search(html)
    if match:
        return html[:match.end()] + span + html[match.end():]
    return span + html


def _code_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"SMTP {code}: {text}"


def _is_temporary(code: int) -> bool:
    return 400 <= code < 500


@provider_kinds.register
class SMTPEmail(Provider):
    """Email through an SMTP relay: one connection per batch, one transaction per message."""

    kind = "smtp"
    channel = "email"
    label = "SMTP"
    max_batch = 100
    targets = ("host",)
    settings_schema = {
        "type": "object",
        "title": "SMTP",
        "required": ["host", "from_email"],
        "properties": {
            "host": {"type": "string", "title": "Host", "minLength": 1},
            "port": {"type": "integer", "title": "Port", "minimum": 1, "maximum": 65535, "default": 587},
            "from_email": {"type": "string", "title": "From address", "format": "email"},
            "from_name": {"type": "string", "title": "From name"},
            "reply_to": {"type": "string", "title": "Reply-To address", "format": "email"},
            "starttls": {"type": "boolean", "title": "Use STARTTLS", "default": True},
            "username": {"type": "string", "title": "Username"},
            "timeout": TIMEOUT_SETTING,
        },
        "additionalProperties": False,
    }
    secrets_schema = {
        "type": "object",
        "title": "SMTP secrets",
        "properties": {"password": {"type": "string", "title": "Password"}},
        "additionalProperties": False,
    }

    def _connect(self) -> smtplib.SMTP:
        """An open, greeted, secured and logged-in connection. Raises TransientError when the
        server cannot be reached or answers 4xx; a permanent refusal (e.g. 535 bad password)
        propagates as smtplib.SMTPResponseException for `send` to fail the batch finally."""
        starttls = bool(self.settings.get("starttls", True))
        port = int(self.settings.get("port") or 587)
        timeout = float(self.settings.get("timeout") or DEFAULT_TIMEOUT)
        try:
            conn = outbound.SMTP(str(self.settings["host"]), port, timeout=timeout)
        except smtplib.SMTPConnectError as exc:
            if _is_temporary(exc.smtp_code):
                raise TransientError(_code_text(exc.smtp_code, exc.smtp_error)) from None
            raise
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot connect to SMTP server: {type(exc).__name__}: {exc}") from None
        try:
            conn.ehlo()
            if starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.settings.get("username"):
                # smtplib never logs the password (and its debug output is off).
                conn.login(str(self.settings["username"]), str(self.secrets.get("password") or ""))
        except smtplib.SMTPResponseException as exc:
            _quit(conn)
            if _is_temporary(exc.smtp_code):
                raise TransientError(_code_text(exc.smtp_code, exc.smtp_error)) from None
            raise
        except smtplib.SMTPServerDisconnected as exc:
            _quit(conn)
            raise TransientError(f"SMTP session failed: {type(exc).__name__}: {exc}") from None
        except smtplib.SMTPException:  # STARTTLS/AUTH not offered, no usable AUTH mechanism
            _quit(conn)
            raise
        except OSError as exc:  # network, TLS handshake (SMTPException is an OSError: caught above)
            _quit(conn)
            raise TransientError(f"SMTP session failed: {type(exc).__name__}: {exc}") from None
        return conn

    def _build(self, message: OutgoingMessage, batch_key: str) -> EmailMessage:
        """The MIME message; raises ValueError on unusable headers (e.g. a newline in the subject)."""
        content = message.content
        from_email = str(self.settings["from_email"])
        from_name = str(content.get("from_name") or self.settings.get("from_name") or "")
        text = str(content.get("text") or "")
        html = html_with_preheader(str(content.get("html") or ""), str(content.get("preheader") or ""))
        if not text and not html:
            raise ValueError("the message has neither text nor html content")

        mail = EmailMessage()
        mail["From"] = formataddr((from_name, from_email)) if from_name else from_email
        mail["To"] = message.to
        mail["Subject"] = str(content.get("subject") or "")
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(idstring=f"cc{message.outbox_id}",
                                        domain=from_email.rpartition("@")[2] or None)
        if self.settings.get("reply_to"):
            mail["Reply-To"] = str(self.settings["reply_to"])
        mail["X-CC-Outbox-Id"] = str(message.outbox_id)
        mail["X-CC-Batch"] = batch_key
        if message.category:
            mail["X-CC-Category"] = message.category
        if text:
            mail.set_content(text)
            if html:
                mail.add_alternative(html, subtype="html")
        else:
            mail.set_content(html, subtype="html")
        return mail

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        if not messages:
            return []
        try:
            conn = self._connect()
        except smtplib.SMTPResponseException as exc:  # permanent: bad credentials, TLS refused
            error = _code_text(exc.smtp_code, exc.smtp_error)
            return [SendResult(m.outbox_id, ok=False, error=error) for m in messages]
        except smtplib.SMTPException as exc:  # configuration: AUTH or STARTTLS not offered
            return [SendResult(m.outbox_id, ok=False, error=f"SMTP: {exc}") for m in messages]

        results: list[SendResult] = []
        try:
            for index, message in enumerate(messages):
                result = self._send_one(conn, message, batch_key)
                results.append(result)
                if result.error and result.error.startswith("connection lost"):
                    results.extend(SendResult(m.outbox_id, ok=False, transient=True,
                                              error="not attempted: " + result.error)
                                   for m in messages[index + 1:])
                    break
        finally:
            _quit(conn)
        if results and all(r.transient and not r.ok for r in results):
            raise TransientError(results[0].error or "temporary SMTP failure")
        return results

    def _send_one(self, conn: smtplib.SMTP, message: OutgoingMessage, batch_key: str) -> SendResult:
        outbox_id = message.outbox_id
        try:
            mail = self._build(message, batch_key)
        except (ValueError, TypeError) as exc:
            return SendResult(outbox_id, ok=False, error=f"cannot build the message: {exc}")
        from_email = str(self.settings["from_email"])
        try:
            conn.send_message(mail, from_addr=from_email, to_addrs=[message.to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b"recipient refused"))
            return SendResult(outbox_id, ok=False, error=_code_text(code, text), transient=_is_temporary(code))
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            return SendResult(outbox_id, ok=False, error=_code_text(exc.smtp_code, exc.smtp_error),
                              transient=_is_temporary(exc.smtp_code))
        except smtplib.SMTPResponseException as exc:
            return SendResult(outbox_id, ok=False, error=_code_text(exc.smtp_code, exc.smtp_error),
                              transient=_is_temporary(exc.smtp_code))
        except smtplib.SMTPNotSupportedError as exc:  # e.g. a non-ASCII address without SMTPUTF8
            return SendResult(outbox_id, ok=False, error=f"SMTP: {exc}")
        except OSError as exc:  # SMTPServerDisconnected, reset, timeout (SMTPException is an OSError)
            return SendResult(outbox_id, ok=False, transient=True,
                              error=f"connection lost: {type(exc).__name__}: {exc}")
        return SendResult(outbox_id, ok=True, provider_message_id=str(mail["Message-ID"]))


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()
