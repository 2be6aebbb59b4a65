"""The store: SQLAlchemy 2 models. Alembic migrations in `engine/migrations` create them.

Where each customer stands in each campaign (an enrollment's node, state and due time) lives
here and nowhere else: RQ jobs only wake the executor up. Times are naive UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.core import clock

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")
#: the largest id of a table with INTEGER ids (segments, audiences, templates, ...): a
#: settings schema caps references there, so a bigger number is a field error, not an overflow
MAX_ID = 2**31 - 1

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    if TYPE_CHECKING:
        # every model maps one Table (none a join or a select), which Core statements take
        __table__: ClassVar[Table]

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime()}


def _now() -> datetime:
    return clock.now()


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32), unique=True)
    push_tokens: Mapped[list[Any]] = mapped_column(default=list)
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: per-channel consent: an opted-out (or bounced) address is skipped, never sent to
    email_opt_out: Mapped[bool] = mapped_column(default=False, server_default="0")
    email_bounced_at: Mapped[datetime | None] = mapped_column()
    sms_opt_out: Mapped[bool] = mapped_column(default=False, server_default="0")
    push_opt_out: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class Segment(Base):
    """A saved rule set (the same rule language as the filter node)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: when `segment_members` was last brought up to date
    evaluated_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class Audience(Base):
    """A static list of customers, filled by campaigns or imports."""

    __tablename__ = "audiences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)


class AudienceMember(Base):
    __tablename__ = "audience_members"

    audience_id: Mapped[int] = mapped_column(ForeignKey("audiences.id", ondelete="CASCADE"), primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=_now)


class SegmentMember(Base):
    """Who matched a segment at its last evaluation, and since when: "entered the segment"
    triggers enroll the members whose `since` is after their campaign launched."""

    __tablename__ = "segment_members"

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    since: Mapped[datetime] = mapped_column(default=_now)


class EventType(Base):
    """A kind of event: registered on first use or created by hand."""

    __tablename__ = "event_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)
    last_seen_at: Mapped[datetime | None] = mapped_column()


class Event(Base):
    """Something a customer did. Grows without bound: indexed for the filters that read it
    (count / last time of an event per customer) and for retention by time."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_profile_name_time", "profile_id", "name", "occurred_at"),
        Index("ix_events_time", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=_now)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    #: draft, scheduled, active, paused, stopped, finished, suspended
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    #: the version new customers enter (the newest saved one)
    version_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    launched_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    #: when the entry node next runs by itself (a scheduled single send, a recurring
    #: schedule's next run); the sweeper runs whatever is overdue
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)


class CampaignTag(Base):
    """A campaign's tags as rows, so lists filter by tag in SQL."""

    __tablename__ = "campaign_tags"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class CampaignEvent(Base):
    """Which events a campaign's current version reacts to: `start` (its event trigger),
    `stop` (ends a customer's journey) and `goal` (a conversion). Rewritten on every save,
    so event ingestion finds the campaigns of an event with one indexed lookup."""

    __tablename__ = "campaign_events"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    event: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


class CampaignVersion(Base):
    """An immutable snapshot of the campaign document; enrollments point at one."""

    __tablename__ = "campaign_versions"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column()
    #: every problem found when it was saved (errors only in a draft saved half-built);
    #: None for versions saved before problems were kept
    problems: Mapped[list[Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=_now)


#: the partial index's predicate, as a literal so the planner can always match the index
#: (a bound parameter may be planned generically, without the index)
ACTIVE = text("enrollments.state = 'active'")


class Enrollment(Base):
    """One customer's journey through one campaign version, and where it stands.

    state: `active` (at `node_id`, to be processed at `due_at`), `done` (left the graph at
    `node_id`), `exited` (stopped, goal met, or campaign stopped).
    """

    __tablename__ = "enrollments"
    __table_args__ = (
        # Claiming and sweeping only look at active positions: a partial index keeps finished
        # journeys out of it, so moving a customer out of the graph adds no index entry.
        Index("ix_enrollments_active", "version_id", "node_id", "due_at",
              sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'")),
        Index("ix_enrollments_campaign_profile", "campaign_id", "profile_id", "entered_at"),
        Index("uq_enrollments_entry_key", "campaign_id", "profile_id", "entry_key", unique=True,
              sqlite_where=text("entry_key IS NOT NULL"), postgresql_where=text("entry_key IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("campaign_versions.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    #: the enrollment this one was forked from when a port feeds several edges
    parent_id: Mapped[int | None] = mapped_column(BigId)
    node_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="active")
    due_at: Mapped[datetime | None] = mapped_column()
    entered_at: Mapped[datetime] = mapped_column(default=_now)
    node_entered_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)
    #: when the customer met the campaign goal (the goal event within its period)
    converted_at: Mapped[datetime | None] = mapped_column()
    #: the trigger's context (e.g. the event's properties) for merge tags and keys
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: an event trigger's key (e.g. the order id): one journey per (campaign, customer, key)
    entry_key: Mapped[str | None] = mapped_column(String(255))


class NodeCounter(Base):
    """Per node and port counts, written in the transaction that moves the batch.

    port `@entered` counts arrivals; any other port counts departures by that port.
    Waiting counts are derived from enrollments, never stored twice.
    """

    __tablename__ = "node_counters"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_versions.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    port: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class CounterHour(Base):
    """The node/port counters again, per hour (UTC), written by the same `add_counts` call in
    the same transaction: a report's time series sums to exactly the canvas totals."""

    __tablename__ = "counter_hours"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    port: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class JourneyStep(Base):
    """One customer leaving one node by one port: the action tracking table.

    Written by the executor (and by stop events) in the transaction that moves the customer,
    beside the counters, so each (node, port) has exactly as many steps as its counter says
    (until CC_STEP_RETENTION_DAYS deletes old ones). The message a send node wrote for the
    step is the outbox row of the same (enrollment, node).
    """

    __tablename__ = "journey_steps"
    __table_args__ = (
        Index("ix_journey_steps_campaign", "campaign_id", "id"),
        Index("ix_journey_steps_node", "campaign_id", "node_id", "port", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: no foreign keys: a row is written for every customer at every step, and PostgreSQL's
    #: per-row key checks cost a fifth of the engine's throughput; deleting a campaign or a
    #: customer deletes their steps explicitly (campaigns.delete, DELETE /api/profiles/<id>)
    campaign_id: Mapped[int] = mapped_column(Integer)
    enrollment_id: Mapped[int] = mapped_column(BigId)
    profile_id: Mapped[int] = mapped_column(BigId, index=True)
    node_id: Mapped[str] = mapped_column(String(64))
    port: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=_now)


class NodeState(Base):
    """Small per-node memory that outlives versions (A/B test progress, limit counts)."""

    __tablename__ = "node_states"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class NodeFailure(Base):
    """A node whose last runs failed, and how many times in a row (engine/core/node_failures.py):
    in the database, so every worker counts the same streak."""

    __tablename__ = "node_failures"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    failed_at: Mapped[datetime] = mapped_column(default=_now)


class AbAssignment(Base):
    """Which variant each test-group customer of an A/B node got, to score the variants."""

    __tablename__ = "ab_assignments"
    __table_args__ = (Index("ix_ab_assignments_node", "campaign_id", "node_id", "variant"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(64))
    #: test round: "restart test" starts a new one
    round: Mapped[int] = mapped_column(Integer, default=1)
    assigned_at: Mapped[datetime] = mapped_column(default=_now)


class ProviderConfig(Base):
    """How to reach a channel's provider. `secrets` (API keys, tokens, passwords) are stored
    apart from `settings` so nothing that serializes settings can leak them."""

    __tablename__ = "provider_configs"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: email, sms, push, webapi
    channel: Mapped[str] = mapped_column(String(16), index=True)
    #: sendgrid, smtp, twilio, fcm, webhook
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class Template(Base):
    """Saved message content with merge tags; which fields matter depends on the channel."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("channel", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    #: {"subject", "preheader", "html", "text"} for email; {"title", "body", "image", "data"} otherwise
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: merge tag defaults, e.g. {"profile.attributes.first_name": "there"}
    defaults: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class OutboxMessage(Base):
    """One message to send: the ledger that makes sends exactly-once.

    Unique per (enrollment, node): a retried chunk cannot write it twice. status: `queued`
    (due at `next_attempt_at`), `sending` (handed to a provider under `lease_until`, batch
    `batch_key`), `sent`, `failed`, `uncertain` (a dispatcher died mid-call and the provider
    cannot say: never resent). Delivery fields are filled by provider webhooks.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "node_id"),
        Index("ix_outbox_due", "next_attempt_at", sqlite_where=text("status = 'queued'"),
              postgresql_where=text("status = 'queued'")),
        Index("ix_outbox_sending", "lease_until", sqlite_where=text("status = 'sending'"),
              postgresql_where=text("status = 'sending'")),
        Index("ix_outbox_campaign_node_profile", "campaign_id", "node_id", "profile_id"),
        Index("ix_outbox_batch", "batch_key"),
        Index("ix_outbox_provider_message", "provider_message_id"),
        # the failures /metrics counts on every scrape, without reading the whole outbox
        Index("ix_outbox_failures", "status", sqlite_where=text("status IN ('failed', 'uncertain')"),
              postgresql_where=text("status IN ('failed', 'uncertain')")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("campaign_versions.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    enrollment_id: Mapped[int] = mapped_column(BigId, ForeignKey("enrollments.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("provider_configs.id", ondelete="SET NULL"))
    to_address: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    next_attempt_at: Mapped[datetime] = mapped_column(default=_now)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column()
    #: when the current batch was handed out (recovery measures the provider's settle time from it)
    claimed_at: Mapped[datetime | None] = mapped_column()
    batch_key: Mapped[str | None] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    sent_at: Mapped[datetime | None] = mapped_column()
    #: newest delivery state from webhooks: processed, delivered, bounced, dropped, deferred, ...
    #: a message to the customer from a non-transactional campaign: frequency caps count it
    #: (a receipt, a web API call or a note to a manager is not counted)
    counts_toward_cap: Mapped[bool] = mapped_column(default=True, server_default="1")
    delivery_status: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[datetime | None] = mapped_column()
    opened_at: Mapped[datetime | None] = mapped_column()
    clicked_at: Mapped[datetime | None] = mapped_column()
    bounced_at: Mapped[datetime | None] = mapped_column()
    unsubscribed_at: Mapped[datetime | None] = mapped_column()


class Notification(Base):
    """An in-app notification kept for the customer's app to read."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_profile", "profile_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(BigId, unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    category: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)
    read_at: Mapped[datetime | None] = mapped_column()


class Popup(Base):
    """A popup a campaign made for one customer, shown on their next matching action on the
    site (`action`), once, until `expires_at`. `token` lets the page report views and clicks
    without an API key."""

    __tablename__ = "popups"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "node_id"),
        Index("ix_popups_profile_action", "profile_id", "action", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    enrollment_id: Mapped[int | None] = mapped_column(BigId)
    #: the site action that shows it (e.g. "page_view", "add_to_cart")
    action: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str] = mapped_column(Text, default="")
    #: [{"id", "label", "url"}]
    buttons: Mapped[list[Any]] = mapped_column(default=list)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    expires_at: Mapped[datetime] = mapped_column()
    #: handed to a page (it is not handed out again)
    shown_at: Mapped[datetime | None] = mapped_column()
    viewed_at: Mapped[datetime | None] = mapped_column()
    clicked_at: Mapped[datetime | None] = mapped_column()


class Poll(Base):
    """Questions with answers to pick; customers' responses are PollResponse rows."""

    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: [{"id", "text", "answers": [{"id", "text"}], "multiple": bool}]
    questions: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class PollResponse(Base):
    """One customer's completed poll (at most one per poll and customer)."""

    __tablename__ = "poll_responses"
    __table_args__ = (UniqueConstraint("poll_id", "profile_id"), Index("ix_poll_responses_completed", "poll_id",
                                                                          "completed_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    #: {question id: [answer id, ...]}
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    completed_at: Mapped[datetime] = mapped_column(default=_now)


class User(Base):
    """Someone who logs in to the web UI. role: admin, marketer (builds and runs campaigns)
    or viewer (reads only)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="marketer")
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    last_login_at: Mapped[datetime | None] = mapped_column()


class ApiKey(Base):
    """A key for programs (`Authorization: Bearer <key>`). Only a hash is kept: the key is
    shown once, when it is created. `prefix` identifies it in lists and logs."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="marketer")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class ImportJob(Base):
    """A profile import: progress for large files, and the rows refused (line and reason)."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    #: running, done, failed
    status: Mapped[str] = mapped_column(String(16), default="running")
    total_rows: Mapped[int | None] = mapped_column(Integer)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_rows: Mapped[int] = mapped_column(Integer, default=0)
    updated_rows: Mapped[int] = mapped_column(Integer, default=0)
    rejected_rows: Mapped[int] = mapped_column(Integer, default=0)
    #: the first rejected rows: [{"line", "field", "message"}]
    rejected: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    finished_at: Mapped[datetime | None] = mapped_column()
