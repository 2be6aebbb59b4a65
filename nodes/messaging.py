"""Messaging nodes: send email, SMS, push, in-app notifications, web API calls, notify a manager,
and route by what happened to an email.

A send node never calls a provider. It writes one outbox row per customer, keyed by
(enrollment, node), in the transaction that moves the batch, and holds the customer. The
dispatcher sends the rows in provider-sized batches and, once a row is sent or has failed,
makes the customer due again; the node then routes them by `sent` or `failed`. Customers
without an address, or who opted out, leave by `skipped` at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    SQLColumnExpression,
    and_,
    bindparam,
    func,
    insert,
    select,
    true,
)

from engine.sdk import (
    Batch,
    CampaignCanvasError,
    NodeType,
    Problem,
    Result,
    id_chunks,
    node_ref,
    ref,
)
from engine.sdk.data import Notification, OutboxMessage, Profile, upsert
from engine.sdk.messaging import (
    Controls,
    controls_of,
    load_contexts,
    over_cap,
    rate_slots,
    renderer_for,
    request_dispatch,
    send_times,
    validate_content,
)
from engine.sdk.wording import quoted, stored_name

#: a held sender is looked at again at least this often, so a lost wakeup strands nobody
BACKSTOP = timedelta(hours=1)
#: outbox states that end the wait, and the port they lead to ("uncertain": a dispatcher
#: died mid-call and the provider cannot confirm; it is never resent, so it did not verifiably go)
RESOLVED = {"sent": "sent", "failed": "failed", "uncertain": "failed"}

_TEXT = {"type": "string", "maxLength": 100_000}


def _settings(content: dict[str, Any], *, immediately: bool = False, extra: dict[str, Any] | None = None) -> dict:
    """A send node's settings schema: provider, template or inline content, category, window."""
    return {
        "type": "object",
        "properties": {
            "provider_id": ref("providers", "Provider (the channel's default when empty)"),
            "template_id": ref("templates", "Template"),
            "content": {**content, "title": "Content (instead of a template)"},
            "category": {"type": "string", "maxLength": 64, "default": "", "title": "Category"},
            "deliver_immediately": {"type": "boolean", "default": immediately,
                                    "title": "Deliver immediately (ignore the 09:00-21:00 window)"},
            **(extra or {}),
        },
        "anyOf": [{"required": ["template_id"]}, {"required": ["content"]}],
    }


def _content_problems(node_id: str, settings: Mapping[str, Any], channel: str) -> list[Problem]:
    """Inline content is checked with the document (syntax, unknown merge tags), so a mistake
    is a save-time error on the node, not a failed send days later."""
    if "content" not in settings:
        return []
    try:
        validate_content(channel, settings["content"])
    except CampaignCanvasError as exc:
        return [Problem(code=exc.code, node_id=node_id, pointer="/settings" + d.get("pointer", "/content"),
                        message=f"Node {node_id!r}: {d.get('message') or exc.message}")
                for d in (exc.details or [{}])]
    return []


def content_summary(settings: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """'Template: Welcome' ('Saved template' when its name is not known here), else the
    first words of the first of `fields` the inline content has."""
    if settings.get("template_id") is not None:
        name = stored_name("templates", settings["template_id"])
        return f"Template: {name}" if name else "Saved template"
    content = settings.get("content")
    text = next((content[f] for f in fields if content.get(f)), None) if isinstance(content, Mapping) else None
    return quoted(text) if isinstance(text, str) else None


class SendNode(NodeType):
    category = "messaging"
    ports = ("sent", "failed", "skipped")
    end_ports = frozenset(ports)  # a message is a step that may well be the last
    channel: ClassVar[str]
    #: a message to the customer: the campaign's frequency cap applies and counts it
    capped: ClassVar[bool] = True
    #: the inline content fields a node card quotes, the first one present
    quote_fields: ClassVar[tuple[str, ...]] = ("subject",)

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """Which template, or the first words of the inline content."""
        return content_summary(settings, cls.quote_fields)

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        return _content_problems(node_id, settings, cls.channel)

    def process(self, batch: Batch) -> Result:
        statuses = _outbox_statuses(batch, self.id)
        known = batch.take(i for i, e in enumerate(batch.enrollment_ids) if e in statuses)
        routed: dict[str, list[int]] = {"sent": [], "failed": [], "skipped": []}
        waiting: list[int] = []
        for i, eid in enumerate(known.enrollment_ids):
            port = RESOLVED.get(statuses[eid])
            (routed[port] if port else waiting).append(i)
        if waiting:
            batch.hold(known.take(waiting), batch.now + BACKSTOP)
        fresh = batch.without(known)
        addresses = self.addresses(fresh)
        controls = controls_of(batch.ctx.document)
        over = over_cap(batch.session, controls, {p: a[1] for p, a in addresses.items()}, batch.ctx.account_tz,
                          batch.now) if self.capped else set()
        sendable = fresh.take(i for i, p in enumerate(fresh.profile_ids) if p in addresses and p not in over)
        self._queue(sendable, addresses, controls)
        skipped = fresh.without(sendable)
        return {"sent": known.take(routed["sent"]), "failed": known.take(routed["failed"]), "skipped": skipped}

    def addresses(self, batch: Batch) -> dict[int, tuple[str, str | None]]:
        """{profile id: (address, time zone)} for the customers this node can reach."""
        found: dict[int, tuple[str, str | None]] = {}
        for chosen in id_chunks(batch.session, Profile.id, list(dict.fromkeys(batch.profile_ids))):
            rows = batch.session.execute(select(Profile.id, self.address_column(), Profile.timezone)
                                         .where(chosen, self.reachable()))
            found.update((pid, (address, tz)) for pid, address, tz in rows if address)
        return found

    def address_column(self) -> SQLColumnExpression[Any]:
        raise NotImplementedError

    def reachable(self) -> ColumnElement[bool]:
        """Consent and deliverability, as SQL over profiles."""
        raise NotImplementedError

    def _queue(self, batch: Batch, addresses: dict[int, tuple[str, str | None]], controls: Controls) -> None:
        if not len(batch):
            return
        if self.settings.get("deliver_immediately"):
            due = [batch.now] * len(batch)
        else:
            due = send_times(batch.now, [addresses[p][1] for p in batch.profile_ids], batch.ctx.account_tz)
        ctx = batch.ctx
        if controls.send_rate_per_minute:
            due = rate_slots(batch.session, ctx.campaign_id, controls.send_rate_per_minute, due)
        rows = [
            {"campaign_id": ctx.campaign_id, "version_id": ctx.version_id, "node_id": self.id, "enrollment_id": eid,
             "profile_id": pid, "channel": self.channel, "provider_id": self.settings.get("provider_id"),
             "to_address": addresses[pid][0], "status": "queued", "next_attempt_at": at, "attempts": 0,
             "created_at": batch.now, "counts_toward_cap": self.capped and not controls.transactional}
            for eid, pid, at in zip(batch.enrollment_ids, batch.profile_ids, due, strict=True)
        ]
        batch.session.execute(upsert(batch.session, OutboxMessage).on_conflict_do_nothing(), rows)
        batch.hold(batch, [at + BACKSTOP for at in due])
        for at in set(due):
            request_dispatch(batch.session, at)


def _outbox_statuses(batch: Batch, node_id: str) -> dict[int, str]:
    """{enrollment id: outbox status} for the members that already have a row at this node."""
    statuses: dict[int, str] = {}
    for chosen in id_chunks(batch.session, OutboxMessage.enrollment_id, batch.enrollment_ids):
        statuses.update(batch.session.execute(
            select(OutboxMessage.enrollment_id, OutboxMessage.status).where(chosen, OutboxMessage.node_id == node_id)
        ).all())
    return statuses


EMAIL_CONTENT = {"type": "object", "properties": {
    "subject": {"type": "string", "minLength": 1, "maxLength": 998, "title": "Subject"},
    "preheader": {"type": "string", "maxLength": 255, "title": "Preheader"},
    "html": {**_TEXT, "title": "HTML"}, "text": {**_TEXT, "title": "Text part"}},
    "required": ["subject"], "anyOf": [{"required": ["html"]}, {"required": ["text"]}]}


class SendEmail(SendNode):
    type = "send_email"
    label = "Send email"
    channel = "email"
    schema = _settings(EMAIL_CONTENT)

    def address_column(self) -> SQLColumnExpression[Any]:
        return Profile.email

    def reachable(self) -> ColumnElement[bool]:
        return and_(Profile.email.is_not(None), Profile.email_opt_out.is_(False), Profile.email_bounced_at.is_(None))


class SendSMS(SendNode):
    type = "send_sms"
    label = "Send SMS"
    channel = "sms"
    quote_fields = ("body",)
    schema = _settings({"type": "object", "properties": {"body": {"type": "string", "minLength": 1,
                                                                   "maxLength": 1600, "title": "Text"}},
                        "required": ["body"]})

    def address_column(self) -> SQLColumnExpression[Any]:
        return Profile.phone

    def reachable(self) -> ColumnElement[bool]:
        return and_(Profile.phone.is_not(None), Profile.sms_opt_out.is_(False))


PUSH_CONTENT = {"type": "object", "properties": {
    "title": {"type": "string", "maxLength": 200, "title": "Title"},
    "body": {"type": "string", "maxLength": 4000, "title": "Text"},
    "image": {"type": "string", "maxLength": 2000, "title": "Image URL"},
    "data": {"type": "object", "additionalProperties": {"type": "string"}, "title": "Data pairs"}},
    "anyOf": [{"required": ["title"]}, {"required": ["body"]}]}


class SendPush(SendNode):
    """Sends to the customer's newest push token."""

    type = "send_push"
    label = "Send push"
    channel = "push"
    quote_fields = ("title", "body")
    schema = _settings(PUSH_CONTENT)

    def addresses(self, batch: Batch) -> dict[int, tuple[str, str | None]]:
        found: dict[int, tuple[str, str | None]] = {}
        for chosen in id_chunks(batch.session, Profile.id, list(dict.fromkeys(batch.profile_ids))):
            rows = batch.session.execute(select(Profile.id, Profile.push_tokens, Profile.timezone)
                                         .where(chosen, Profile.push_opt_out.is_(False)))
            found.update((pid, (tokens[-1], tz)) for pid, tokens, tz in rows if tokens)
        return found


class CallWebAPI(SendNode):
    """Calls the web API of the chosen provider config with a JSON body per customer (merge
    tags allowed in its strings); `sent` on a 2xx answer."""

    type = "webapi_call"
    label = "Web API call"
    channel = "webapi"
    capped = False
    schema = _settings({"type": "object", "properties": {"body": {"title": "JSON body"}}, "required": ["body"]},
                       immediately=True)

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """Which web API it calls (its provider config), by name."""
        name = stored_name("providers", settings.get("provider_id"))
        return f"Calls {name}" if name else "Calls the default web API"

    def addresses(self, batch: Batch) -> dict[int, tuple[str, str | None]]:
        return {pid: ("", None) for pid in batch.profile_ids}


class NotifyManager(SendNode):
    """Emails a team member about each customer who gets here (e.g. a VIP needs a call)."""

    type = "notify_manager"
    label = "Notify manager"
    channel = "email"
    capped = False
    schema = _settings(EMAIL_CONTENT, immediately=True, extra={
        "manager_email": {"type": "string", "format": "email", "title": "Manager's email"}})
    schema["required"] = ["manager_email"]

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        return f"To {settings.get('manager_email')}"

    def addresses(self, batch: Batch) -> dict[int, tuple[str, str | None]]:
        return {pid: (self.settings["manager_email"], None) for pid in batch.profile_ids}


class SendInApp(NodeType):
    """Stores a notification for the customer's app to read (GET /api/profiles/<id>/notifications).
    Written in the batch's own transaction: nothing to dispatch, nothing to send twice."""

    type = "send_inapp"
    label = "Send in-app notification"
    category = "messaging"
    template_channel = "push"  # the same fields as a push, no image
    ports = ("sent", "skipped")
    end_ports = frozenset(ports)
    schema = _settings({"type": "object", "properties": {
        "title": {"type": "string", "maxLength": 200, "title": "Title"},
        "body": {"type": "string", "maxLength": 4000, "title": "Text"},
        "data": {"type": "object", "additionalProperties": {"type": "string"}, "title": "Data pairs"}},
        "anyOf": [{"required": ["title"]}, {"required": ["body"]}]}, immediately=True)

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        return _content_problems(node_id, settings, "push")  # the same fields as a push, no image

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        return content_summary(settings, ("title", "body"))

    def process(self, batch: Batch) -> Result:
        renderer = renderer_for(batch.session, self.settings)
        contexts = load_contexts(batch.session, batch.enrollment_ids)
        rows = []
        for eid, pid in zip(batch.enrollment_ids, batch.profile_ids, strict=True):
            rendered = renderer.render(contexts[eid])
            rows.append({"profile_id": pid, "campaign_id": batch.ctx.campaign_id, "title": rendered.get("title", ""),
                         "body": rendered.get("body", ""), "data": rendered.get("data", {}),
                         "category": self.settings.get("category", ""), "created_at": batch.now})
        if rows:
            batch.session.execute(insert(Notification), rows)
        return {"sent": batch, "skipped": batch.empty()}


EMAIL_STATUSES = ("opened", "clicked", "delivered_not_opened", "bounced", "not_delivered")


class CheckEmailStatus(NodeType):
    """Routes customers by what happened to the email an earlier send-email node sent them:
    clicked (which implies opened), else opened, else bounced, else delivered but not
    opened, else not delivered (still in flight, failed, skipped, or no email at all)."""

    type = "check_email_status"
    label = "Check email status"
    category = "messaging"
    ports = EMAIL_STATUSES
    end_ports = frozenset(EMAIL_STATUSES)  # follow up on some statuses, the others end
    schema = {"type": "object", "properties": {"email_node": node_ref("send_email", "Send email node")},
              "required": ["email_node"]}

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        target = next((n for n in document.get("nodes", []) if n.get("id") == settings["email_node"]), None)
        if target is None or target.get("type") != SendEmail.type:
            return [Problem(code="unknown_email_node", pointer="/settings/email_node", node_id=node_id,
                            message=f"Node {node_id!r}: the email it checks is not on this canvas; "
                                    "pick another.")]
        return []

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """Which email it checks, by that node's label."""
        name = stored_name("nodes", settings.get("email_node"))
        return f"Email: {name}" if name else "An earlier email"

    def process(self, batch: Batch) -> Result:
        latest = _latest_emails(batch, self.settings["email_node"])
        routed: dict[str, list[int]] = {port: [] for port in EMAIL_STATUSES}
        for i, pid in enumerate(batch.profile_ids):
            routed[_email_status(latest.get(pid))].append(i)
        return {port: batch.take(idx) for port, idx in routed.items()}


_EMAIL_FACTS = (OutboxMessage.clicked_at, OutboxMessage.opened_at, OutboxMessage.bounced_at,
                OutboxMessage.delivered_at, OutboxMessage.delivery_status)


def _latest_emails(batch: Batch, email_node: str) -> dict[int, tuple[Any, ...]]:
    """{profile id: what happened to their newest email from `email_node` of this campaign}.

    On PostgreSQL one index probe per customer (campaign, node, profile: the whole key of
    ix_outbox_campaign_node_profile), whatever the planner knows: with `profile_id = ANY(...)`
    a planner without statistics (a fresh table, autovacuum not yet round) filtered the node's
    whole outbox for each chunk, 19 s a chunk at 667,000 emails. SQLite plans the IN well."""
    o = OutboxMessage
    profiles = list(dict.fromkeys(batch.profile_ids))
    mine = (o.campaign_id == batch.ctx.campaign_id, o.node_id == email_node)
    if not profiles:
        return {}
    if batch.session.get_bind().dialect.name == "postgresql":
        wanted = (func.unnest(bindparam("profiles", profiles, type_=ARRAY(BigInteger))).table_valued("id")
                  .render_derived("p"))
        newest = (select(*_EMAIL_FACTS).where(*mine, o.profile_id == wanted.c.id)
                  .order_by(o.id.desc()).limit(1).lateral("newest"))
        rows = batch.session.execute(select(wanted.c.id, *newest.c).select_from(wanted.join(newest, true())))
        return {r[0]: tuple(r[1:]) for r in rows}
    latest: dict[int, tuple[Any, ...]] = {}
    for chosen in id_chunks(batch.session, o.profile_id, profiles):
        rows = batch.session.execute(select(o.profile_id, *_EMAIL_FACTS).where(chosen, *mine).order_by(o.id))
        latest.update((r[0], tuple(r[1:])) for r in rows)  # the newest row per customer wins
    return latest


def _email_status(row: tuple[Any, ...] | None) -> str:
    if row is None:
        return "not_delivered"
    clicked, opened, bounced, delivered, status = row
    if clicked:
        return "clicked"
    if opened:
        return "opened"
    if bounced or status in ("bounced", "dropped"):
        return "bounced"
    return "delivered_not_opened" if delivered else "not_delivered"
