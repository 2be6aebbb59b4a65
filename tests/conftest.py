"""Shared fixtures: real databases (SQLite file and PostgreSQL) and a real Redis.

Nothing is skipped silently: if PostgreSQL or Redis is not reachable, the tests that need
them fail and say how to start them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.core import db, registry
from engine.core.models import Base
from tests.standins import LOOPBACK_ALLOW

PG_ADMIN_URL = os.environ.get("CC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("CC_TEST_REDIS_URL", "redis://127.0.0.1:6379")
#: each test session claims a Redis database of its own (tests flush it): 15 down to 1
REDIS_DATABASES = range(15, 0, -1)
#: the databases every database test runs on (`make test-fast` sets "sqlite"; CI runs both)
DATABASES = [name.strip() for name in os.environ.get("CC_TEST_DATABASES", "sqlite,postgresql").split(",")]

registry.load()
# The provider stand-ins are servers on 127.0.0.1: let this process, and every process a test
# starts (they inherit the environment), call them. A test of the guard itself changes it.
os.environ["CC_OUTBOUND_ALLOW"] = LOOPBACK_ALLOW


#: what the fault tests (`-m chaos`, `make chaos`) measured: printed after the run and
#: written to test-artifacts/chaos.json
CHAOS_FIGURES: list[dict[str, Any]] = []


@pytest.fixture
def chaos_report(request):
    """`report(what, **figures)`: one line of the fault suite's figures; for work that must
    happen exactly once: expected, distinct (happened), duplicated (extra times), lost."""
    def report(what: str, **figures: Any) -> None:
        CHAOS_FIGURES.append({"test": request.node.nodeid, "what": what, **figures})
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if not CHAOS_FIGURES:
        return
    import json
    from pathlib import Path

    terminalreporter.section("fault figures")
    for row in CHAOS_FIGURES:
        figures = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("test", "what"))
        terminalreporter.write_line(f"{row['what']}: {figures}  [{row['test']}]")
    out = Path(__file__).resolve().parent.parent / "test-artifacts" / "chaos.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(CHAOS_FIGURES, indent=2))


def pytest_configure(config) -> None:
    if unknown := set(DATABASES) - {"sqlite", "postgresql"}:
        raise pytest.UsageError(f"CC_TEST_DATABASES: unknown {sorted(unknown)}; use sqlite, postgresql or both")


def _pg_database() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - turned into a clear failure
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is not usable ({exc.__class__.__name__}: {exc}). Start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' or set CC_TEST_PG_URL."
        )
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated database of each kind, shared by the session; tables emptied per test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        db.upgrade(url)
        yield url
    else:
        gen = _pg_database()
        url = next(gen)
        db.upgrade(url)
        yield url
        gen.close()


@pytest.fixture
def engine(database_url):
    eng = db.make_engine(database_url)
    yield eng
    _empty_tables(eng)
    eng.dispose()


@pytest.fixture
def sessions(engine):
    """A sessionmaker on the test database."""
    return db.session_factory(engine)


def _empty_tables(eng) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with eng.begin() as conn:
        if eng.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
            if _has_sequence(conn):
                conn.execute(text("DELETE FROM sqlite_sequence"))


def _has_sequence(conn) -> bool:
    return bool(conn.execute(text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first())


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database no other test session uses, so concurrent test runs on one machine
    never flush each other's jobs."""
    with claimed_redis_database() as url:
        yield url


@pytest.fixture(scope="session")
def server_redis_url() -> Iterator[str]:
    """Another Redis database of the session's own, for a server that lives as long as the
    session (tests/browser): the per-test flushes of `redis_url` must not wipe its queue."""
    with claimed_redis_database() as url:
        yield url


@contextmanager
def claimed_redis_database() -> Iterator[str]:
    """The URL of a Redis database nobody else claimed (a claim key with a TTL marks it),
    released at the end."""
    token = uuid.uuid4().hex
    for number in REDIS_DATABASES:
        url = f"{TEST_REDIS_URL.rstrip('/')}/{number}"
        conn = redis.Redis.from_url(url)
        try:
            claimed = conn.set("cc-test-session", token, nx=True, ex=3600)
        except redis.RedisError as exc:
            pytest.fail(
                f"Redis at {TEST_REDIS_URL} is not reachable ({exc}). Start it with 'redis-server --daemonize yes "
                "--bind 127.0.0.1 --port 6379 --save \"\" --appendonly no' or set CC_TEST_REDIS_URL."
            )
        if claimed:
            try:
                yield url
            finally:
                conn.delete("cc-test-session")
                conn.close()
            return
        conn.close()
    pytest.fail(f"every Redis database at {TEST_REDIS_URL} is claimed by another test session")


@pytest.fixture
def redis_conn(redis_url) -> Iterator[redis.Redis]:
    """The machine's Redis (a real server), on this session's database, emptied per test."""
    conn = redis.Redis.from_url(redis_url)
    flush_keeping_claim(conn)
    yield conn
    flush_keeping_claim(conn)
    conn.close()


def flush_keeping_claim(conn: redis.Redis) -> None:
    """Empty the session's Redis database but keep its claim: a database that lost its claim
    could be claimed by a concurrent test session, whose jobs the next flush would wipe."""
    token, ttl = conn.get("cc-test-session"), conn.ttl("cc-test-session")
    conn.flushdb()
    if token is not None:
        conn.set("cc-test-session", token, ex=max(ttl, 60))


@pytest.fixture
def sendgrid() -> Iterator[Any]:
    """A SendGrid stand-in: a real HTTP server on 127.0.0.1 speaking SendGrid's v3 API."""
    from tests.standins import SendGridStandIn

    with SendGridStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def webhook_keys(monkeypatch) -> Any:
    """Every provider webhook's key configured (a fresh SendGrid key pair, a Twilio auth
    token, a push bearer token) and unsigned webhooks not allowed: sign with the result."""
    from tests.support import WebhookKeys

    keys = WebhookKeys()
    for name, value in keys.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CC_INSECURE_ALLOW_UNSIGNED_WEBHOOKS", raising=False)
    return keys


@pytest.fixture
def isolated_registry():
    """Register throwaway node types inside a test; the registry is restored afterwards."""
    with registry.snapshot():
        yield registry


START = __import__("datetime").datetime(2026, 12, 1, 8, 0, 0)


class Harness:
    """A runtime on the test database and the real Redis, a virtual clock and a time machine."""

    def __init__(self, rt, clock, machine):
        self.rt, self.clock, self.machine = rt, clock, machine

    def session(self):
        return self.rt.sessions()

    def transaction(self):
        return db.transaction(self.rt.sessions)


@pytest.fixture
def harness(database_url, redis_conn, engine):
    with harness_on(database_url, redis_conn) as h:
        yield h


@contextmanager
def harness_on(database_url: str, redis_conn: redis.Redis, **settings: Any) -> Iterator[Harness]:
    """A Harness whose runtime has `settings` besides the usual (chunks of 500, a queue of
    its own), installed as the process's runtime and clock until the block ends."""
    from engine.core import clock as clocks
    from engine.core.config import Settings
    from engine.ops import runtime
    from engine.ops.runtime import Runtime
    from engine.ops.timemachine import TimeMachine

    settings = {"chunk_size": 500, **settings}
    rt = Runtime(Settings(database_url=database_url, queue_name=f"test-{uuid.uuid4().hex[:8]}", **settings),
                 redis_conn=redis_conn)
    virtual = clocks.VirtualClock(START)
    previous_clock = clocks.use(virtual)
    previous_rt = runtime.use(rt)
    try:
        yield Harness(rt, virtual, TimeMachine(rt, virtual))
    finally:
        runtime.use(previous_rt)
        clocks.use(previous_clock)
        rt.close()


@pytest.fixture
def app(harness):
    """The Flask app on the harness runtime."""
    from server import create_app

    flask_app, _socketio = create_app(harness.rt)
    return flask_app


@pytest.fixture
def api(app, harness):
    """A test client that calls the API with an admin API key."""
    from tests.support import authed_client

    return authed_client(app, harness, role="admin")
