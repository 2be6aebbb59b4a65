"""Delivery status from provider webhooks: what happened to a message after it was sent.

Providers report asynchronously, out of order, and more than once (SendGrid retries a
webhook until it gets a 2xx, and batches unrelated events together). So every update here is
- bulk: one SELECT for all the messages a request names, one executemany per table written;
- monotonic: `delivery_status` only moves to a stronger state (a late `delivered` never
  overwrites `bounced`) and each `*_at` column is set once, the first time;
- idempotent: an Event row and a consent change happen only when a fact is new for its
  message, so a replayed webhook changes nothing;
- attributable: a report changes a message only when it proves it is about that message.
  A SendGrid event names its outbox id with the id's signature (`cc_sig`, engine/messaging/outbox_refs.py)
  and the address it went to; a Twilio callback names the message SID and the number. An
  event with a guessed id, a wrong signature or another address is ignored. Events of
  messages sent before ids were signed carry no `cc_sig`; they are taken on their address
  alone, and only from a webhook SendGrid itself signed (`signed_webhook`).

Events recorded (for metrics and A/B scoring): email.delivered, email.open, email.click,
email.bounce, email.dropped, email.unsubscribe, email.spamreport; sms.delivered, sms.open,
sms.failed; push.delivered, push.open, push.failed. Properties: outbox_id, campaign_id,
node_id (and url for clicks). They are stored directly (in bulk), not through
`events.record_event`: delivery events do not start event-triggered journeys.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from engine.core import clock, waiting
from engine.core.batch import IN_CHUNK, id_chunks
from engine.core.models import Event, OutboxMessage, Profile
from engine.journeys.events import Occurrence
from engine.messaging import outbox_refs

log = logging.getLogger(__name__)

#: how strong each delivery state is; a message only ever moves up. Terminal failures and a
#: spam report outrank engagement, which outranks delivery, which outranks "in transit".
RANK: dict[str, int] = {
    "queued": 1, "processed": 1, "sending": 2, "sent": 3, "deferred": 3, "delivered": 4, "opened": 5,
    "clicked": 6, "unsubscribed": 7, "bounced": 8, "undelivered": 8, "failed": 8, "dropped": 9,
    "spamreport": 10,
}

#: the largest id a BIGINT column holds: anything bigger is junk, not a lookup to attempt
MAX_ID = 2**63 - 1
#: provider message ids are short printable tokens (Twilio SIDs, FCM names)
MAX_SID = 255

#: consent changes a fact may carry
BOUNCED, EMAIL_OPT_OUT, SMS_OPT_OUT = "email_bounced", "email_opt_out", "sms_opt_out"
#: Twilio error 21610: the recipient replied STOP, so the number is unsubscribed
TWILIO_UNSUBSCRIBED = "21610"


@dataclass(frozen=True)
class Fact:
    """What one provider report means for a message: the state it moves to, the set-once
    time column it fills (None: the state itself tells whether it happened before), the Event
    recorded the first time, and a fact it implies (a click means the email was opened)."""

    status: str
    stamp: str | None = None
    event: str | None = None
    implies: Fact | None = None


_EMAIL_OPEN = Fact("opened", "opened_at", "email.open")
_EMAIL_UNSUBSCRIBE = Fact("unsubscribed", "unsubscribed_at", "email.unsubscribe")

#: SendGrid Event Webhook `event` values
EMAIL_FACTS: dict[str, Fact] = {
    "processed": Fact("processed"),
    "deferred": Fact("deferred"),
    "delivered": Fact("delivered", "delivered_at", "email.delivered"),
    "open": _EMAIL_OPEN,
    "click": Fact("clicked", "clicked_at", "email.click", implies=_EMAIL_OPEN),
    "bounce": Fact("bounced", "bounced_at", "email.bounce"),
    "dropped": Fact("dropped", None, "email.dropped"),
    "spamreport": Fact("spamreport", None, "email.spamreport"),
    "unsubscribe": _EMAIL_UNSUBSCRIBE,
    "group_unsubscribe": _EMAIL_UNSUBSCRIBE,
}

_SMS_FAILED = Fact("failed", "bounced_at", "sms.failed")
_SMS_QUEUED = Fact("queued")

#: Twilio MessageStatus values
SMS_FACTS: dict[str, Fact] = {
    "accepted": _SMS_QUEUED,
    "scheduled": _SMS_QUEUED,
    "queued": _SMS_QUEUED,
    "sending": Fact("sending"),
    "sent": Fact("sent"),
    "delivered": Fact("delivered", "delivered_at", "sms.delivered"),
    "read": Fact("opened", "opened_at", "sms.open"),
    "undelivered": Fact("undelivered", "bounced_at", "sms.failed"),
    "failed": _SMS_FAILED,
}

#: generic push receipt statuses
PUSH_FACTS: dict[str, Fact] = {
    "delivered": Fact("delivered", "delivered_at", "push.delivered"),
    "opened": Fact("opened", "opened_at", "push.open"),
    "failed": Fact("failed", "bounced_at", "push.failed"),
}

#: SendGrid drop reasons that mean the address is on one of its suppression lists
_DROP_CONSENT = {"Bounced Address": BOUNCED, "Unsubscribed Address": EMAIL_OPT_OUT,
                 "Spam Reporting Address": EMAIL_OPT_OUT}

_STAMPS = ("delivered_at", "opened_at", "clicked_at", "bounced_at", "unsubscribed_at")


@dataclass
class _Message:
    """The delivery columns of one outbox row, changed in memory and written back in bulk."""

    id: int
    campaign_id: int
    node_id: str
    profile_id: int
    to_address: str
    delivery_status: str | None
    delivered_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    bounced_at: datetime | None
    unsubscribed_at: datetime | None
    dirty: bool = False


#: the columns of _Message, in its field order
_COLUMNS = (OutboxMessage.id, OutboxMessage.campaign_id, OutboxMessage.node_id, OutboxMessage.profile_id,
            OutboxMessage.to_address, OutboxMessage.delivery_status,
            *(getattr(OutboxMessage, name) for name in _STAMPS))


@dataclass
class _Report:
    """One provider report, parsed: which message (outbox id or provider message id), what
    it says, when, the consent it changes if new, extra Event properties, the address it
    says the message went to, and whether it named a message without proving it (`forged`:
    a missing or wrong reference signature)."""

    ref: int | str | None
    fact: Fact | None
    at: datetime
    consent: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    address: str | None = None
    forged: bool = False


@dataclass
class _Changes:
    """Everything the new facts of a request write besides the outbox rows."""

    events: list[dict[str, Any]] = field(default_factory=list)
    bounced: dict[int, datetime] = field(default_factory=dict)
    opt_outs: dict[str, set[int]] = field(default_factory=dict)


# --------------------------------------------------------------------------- public API


def apply_email_events(session: Session, events: list[Any], now: datetime, *, signing_key: bytes,
                       signed_webhook: bool = False) -> dict[str, int]:
    """Apply a SendGrid Event Webhook payload (the decoded JSON array). Events are mapped to
    outbox rows by the `cc_outbox_id` custom argument, which must carry its `cc_sig` (made
    with `signing_key`; without one only when `signed_webhook`, see the module docstring),
    and their `email` must be the message's address. Returns counts: `applied` (changed
    something), `duplicates` (a known message, nothing new: a retry or a superseded state),
    `ignored` (not ours, unproven, unknown message or event type, malformed)."""
    reports = [_email_report(item, now, signing_key, signed_webhook) for item in events]
    return _apply(session, "email", reports, _same_email)


def apply_sms_status(session: Session, outbox_id_or_sid: int | str, status: str, now: datetime, *,
                     to: str | None, error_code: str | None = None, at: datetime | None = None) -> dict[str, int]:
    """Apply one Twilio status callback. An int is an outbox id; a string is the message SID
    (our provider message id). `to` is the number Twilio says it sent to: another number
    than the message's and the report is ignored. Error 21610 (the recipient texted STOP)
    opts the profile out."""
    consent = SMS_OPT_OUT if str(error_code or "") == TWILIO_UNSUBSCRIBED else None
    report = _Report(_ref(outbox_id_or_sid), SMS_FACTS.get(status) if isinstance(status, str) else None,
                     _clamp(at, now), consent, address=to)
    return _apply(session, "sms", [report], _same_phone)


def apply_push_status(session: Session, message_id: int | str, status: str, now: datetime, *,
                      at: datetime | None = None) -> dict[str, int]:
    """Apply one push receipt: delivered, opened or failed. An int is an outbox id; a string
    is the provider message id."""
    return apply_push_receipts(session, [{"message_id": message_id, "status": status}], now, at=at)


def apply_push_receipts(session: Session, receipts: list[Any], now: datetime, *,
                        at: datetime | None = None) -> dict[str, int]:
    """Apply many push receipts at once: `{"outbox_id": int}` or `{"message_id": str}` (an
    int message_id is taken as an outbox id), `"status"`, optional unix `"timestamp"`."""
    return _apply(session, "push", [_push_report(item, now, at) for item in receipts])


def event_time(value: Any, now: datetime) -> datetime:
    """A provider's unix timestamp as naive UTC; `now` when missing or junk, and never later
    than `now` (provider clock skew must not put events in the future)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return now
    if isinstance(value, bool) or not isinstance(value, int | float):
        return now
    try:
        when = datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return now
    return min(when, now)


# --------------------------------------------------------------------------- parsing


def _email_report(item: Any, now: datetime, signing_key: bytes, signed_webhook: bool) -> _Report:
    """One SendGrid event; anything that is not an object with our (signed) id is ignored later."""
    if not isinstance(item, Mapping):
        return _Report(None, None, now)
    name = item.get("event")
    fact = EMAIL_FACTS.get(name) if isinstance(name, str) else None
    outbox_id = _outbox_id(item.get("cc_outbox_id"))
    proven = outbox_id is not None and (outbox_refs.verify(outbox_id, item["cc_sig"], signing_key)
                                        if "cc_sig" in item else signed_webhook)
    email = item.get("email")
    report = _Report(outbox_id if proven else None, fact, event_time(item.get("timestamp"), now),
                     address=email if isinstance(email, str) else None, forged=outbox_id is not None and not proven)
    report.consent = _email_consent(name, item)
    if name == "click" and isinstance(item.get("url"), str):
        report.extra["url"] = item["url"]
    return report


def _email_consent(name: Any, item: Mapping[str, Any]) -> str | None:
    """A hard bounce (not a temporary `blocked`) marks the address bounced; an unsubscribe or
    spam report opts out; a drop for a suppressed address carries that suppression over."""
    if name == "bounce":
        return None if item.get("type") == "blocked" else BOUNCED
    if name in ("unsubscribe", "group_unsubscribe", "spamreport"):
        return EMAIL_OPT_OUT
    if name == "dropped":
        reason = item.get("reason")
        return _DROP_CONSENT.get(reason) if isinstance(reason, str) else None
    return None


def _push_report(item: Any, now: datetime, at: datetime | None) -> _Report:
    if not isinstance(item, Mapping):
        return _Report(None, None, now)
    ref = _outbox_id(item["outbox_id"]) if "outbox_id" in item else _ref(item.get("message_id"))
    status = item.get("status")
    when = at if at is not None else event_time(item.get("timestamp"), now)
    return _Report(ref, PUSH_FACTS.get(status) if isinstance(status, str) else None, _clamp(when, now))


def _outbox_id(value: Any) -> int | None:
    """Our id from a custom argument: SendGrid turns custom args into strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 19:
        value = int(value.strip())
    return value if isinstance(value, int) and 0 < value <= MAX_ID else None


def _ref(value: Any) -> int | str | None:
    """An outbox id (int) or a provider message id (a short printable string)."""
    if isinstance(value, int):
        return _outbox_id(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_SID and value.isprintable():
        return value
    return None


def _clamp(at: datetime | None, now: datetime) -> datetime:
    return now if at is None else min(at, now)


def _same_email(reported: str | None, address: str) -> bool:
    return reported is not None and reported.strip().lower() == address.strip().lower()


_NOT_DIGITS = re.compile(r"\D")


def _same_phone(reported: str | None, address: str) -> bool:
    """Twilio reports E.164 (+15550100100); a number stored without its country code
    (5550100100) is the same number when the digits end alike."""
    if reported is None:
        return False
    got, sent = _NOT_DIGITS.sub("", reported), _NOT_DIGITS.sub("", address)
    return len(sent) >= 6 and got.endswith(sent)


# --------------------------------------------------------------------------- applying


#: whether a report's address is the message's: (reported, the message's to_address)
AddressCheck = Callable[[str | None, str], bool]


def _apply(session: Session, channel: str, reports: list[_Report], same_address: AddressCheck | None = None
           ) -> dict[str, int]:
    """Load every message the reports name (locked, in one go), apply the reports oldest
    first, then write rows, events and consent in bulk. With `same_address`, a report whose
    address is not its message's is ignored."""
    counts = {"applied": 0, "ignored": 0, "duplicates": 0}
    usable = [r for r in reports if r.ref is not None and r.fact is not None]
    counts["ignored"] = len(reports) - len(usable)
    unproven = sum(r.forged for r in reports)
    by_id, by_sid = _load(session, channel, usable)
    changes = _Changes()
    for report in sorted(usable, key=lambda r: r.at):
        message = by_id.get(report.ref) if isinstance(report.ref, int) else by_sid.get(str(report.ref))
        if message is not None and same_address is not None and not same_address(report.address, message.to_address):
            message, unproven = None, unproven + 1
        if message is None:
            counts["ignored"] += 1
            continue
        new = _apply_fact(message, cast(Fact, report.fact), report.at)  # a usable report has its fact
        counts["applied" if new else "duplicates"] += 1
        _note(changes, message, new, report)
    _write(session, by_id.values(), changes)
    if unproven:
        log.warning("%s delivery reports: %d ignored for naming a message without its reference signature "
                    "or with another address than it went to", channel, unproven)
    return counts


def _apply_fact(message: _Message, fact: Fact, at: datetime) -> list[Fact]:
    """Apply `fact` (and what it implies) if new for the message; return the new facts."""
    new = _apply_fact(message, fact.implies, at) if fact.implies else []
    if fact.stamp is not None:
        if getattr(message, fact.stamp) is not None:
            return new
        setattr(message, fact.stamp, at)
    elif not _stronger(fact.status, message.delivery_status):
        return new  # a state without its own time column happened before iff it is reached
    if _stronger(fact.status, message.delivery_status):
        message.delivery_status = fact.status
    message.dirty = True
    return [*new, fact]


def _stronger(status: str, current: str | None) -> bool:
    return RANK[status] > RANK.get(current or "", 0)


def _note(changes: _Changes, message: _Message, new: list[Fact], report: _Report) -> None:
    """The Events and consent changes of facts new to this message (none for a repeat)."""
    for fact in new:
        if fact.event is None:
            continue
        properties: dict[str, Any] = {"outbox_id": message.id, "campaign_id": message.campaign_id,
                                      "node_id": message.node_id}
        if fact is report.fact:
            properties.update(report.extra)
        changes.events.append({"profile_id": message.profile_id, "name": fact.event,
                               "properties": properties, "occurred_at": report.at})
    if new and report.consent == BOUNCED:
        changes.bounced.setdefault(message.profile_id, report.at)
    elif new and report.consent is not None:
        changes.opt_outs.setdefault(report.consent, set()).add(message.profile_id)


def _load(session: Session, channel: str, reports: list[_Report]) -> tuple[dict[int, _Message], dict[str, _Message]]:
    """The named messages of `channel`, locked against a concurrent webhook for the same
    messages (in id order, so two requests cannot deadlock): by outbox id and by provider id."""
    ids = sorted({r.ref for r in reports if isinstance(r.ref, int)})
    sids = sorted({r.ref for r in reports if isinstance(r.ref, str)})
    conditions = [*id_chunks(session, OutboxMessage.id, ids),
                  *(OutboxMessage.provider_message_id.in_(sids[i:i + IN_CHUNK]) for i in range(0, len(sids), IN_CHUNK))]
    by_id: dict[int, _Message] = {}
    by_sid: dict[str, _Message] = {}
    for condition in conditions:
        query = (select(*_COLUMNS, OutboxMessage.provider_message_id)
                 .where(condition, OutboxMessage.channel == channel)
                 .order_by(OutboxMessage.id).with_for_update())
        for *values, sid in session.execute(query):
            message = by_id.setdefault(values[0], _Message(*values))
            if sid is not None:
                by_sid[sid] = message
    return by_id, by_sid



def _write(session: Session, messages: Iterable[_Message], changes: _Changes) -> None:
    """One executemany per table: every changed row gets all its delivery columns (the same
    key set for all, so SQLAlchemy sends a single statement)."""
    rows = [{"id": m.id, "delivery_status": m.delivery_status, **{name: getattr(m, name) for name in _STAMPS}}
            for m in messages if m.dirty]
    if rows:
        session.execute(update(OutboxMessage), rows)
    if changes.events:
        session.execute(insert(Event), changes.events)
        # a journey waiting for this open or click goes on now, not at its timeout
        waiting.wake(session, [Occurrence(e["profile_id"], e["name"], e["properties"], e["occurred_at"])
                               for e in changes.events], clock.now())
    _write_consent(session, changes)


def _write_consent(session: Session, changes: _Changes) -> None:
    """Bounces keep the first bounce time; opt-outs only flip profiles not yet opted out."""
    if changes.bounced:
        table = Profile.__table__
        statement = (update(table).where(table.c.id == bindparam("pid"), table.c.email_bounced_at.is_(None))
                     .values(email_bounced_at=bindparam("at")))
        session.execute(statement, [{"pid": pid, "at": at} for pid, at in sorted(changes.bounced.items())])
    for column, profile_ids in sorted(changes.opt_outs.items()):
        attribute = getattr(Profile, column)
        for condition in id_chunks(session, Profile.id, sorted(profile_ids)):
            session.execute(update(Profile).where(condition, attribute.is_(False)).values({column: True})
                            .execution_options(synchronize_session=False))
