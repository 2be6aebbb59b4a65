"""Provider configs: how each channel reaches its provider, and the secrets that takes.

Used by the API (forms create and edit configs) and by the dispatcher (which builds the
provider a message goes out through). Every function works inside the caller's transaction,
so a rejected change (bad settings, a taken name) leaves nothing half-written.

Secrets are write-only: they go in through `create_provider` / `update_provider`, come out
only through `build` (for the provider to use), and `public` shows which ones are set, never
their values. A form that never sees a secret can still save the config: an omitted secret
keeps its stored value, an explicit null removes it. `RedactSecrets` keeps them out of logs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from sqlalchemy import event, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.core.clock import iso
from engine.core.errors import (
    InvalidInput,
    InvalidState,
    NameTaken,
    NotFound,
)
from engine.core.graph import label, node_class
from engine.core.models import (
    ACTIVE,
    Campaign,
    CampaignVersion,
    Enrollment,
    ProviderConfig,
)
from engine.core.pointers import pointer
from engine.core.validation import Problem
from engine.messaging import outbound
from engine.messaging.channels import CHANNELS, Provider, provider_kinds

log = logging.getLogger(__name__)

#: fields a client may write (schemas/api/providers.schema.json; the read-only ones `public`
#: adds are accepted and ignored, so a form may send back what it got)
FIELDS = ("name", "channel", "kind", "settings", "secrets", "is_default")


# --------------------------------------------------------------------------- reading


def get_provider(session: Session, provider_id: int) -> ProviderConfig:
    """The config, or NotFound (the API answers 404)."""
    config = session.get(ProviderConfig, provider_id)
    if config is None:
        raise NotFound(f"provider config {provider_id} does not exist")
    return config


def list_providers(session: Session, channel: str | None = None) -> list[ProviderConfig]:
    """Every config (of `channel` when given), by channel then age: the order forms list them."""
    query = select(ProviderConfig).order_by(ProviderConfig.channel, ProviderConfig.created_at, ProviderConfig.id)
    if channel is not None:
        query = query.where(ProviderConfig.channel == channel)
    return list(session.scalars(query))


def default_provider(session: Session, channel: str) -> ProviderConfig | None:
    """The channel's default config (what a send node without `provider_id` uses), or None
    when the channel has none. Falls back to the oldest should no row carry the flag."""
    query = (select(ProviderConfig).where(ProviderConfig.channel == channel)
             .order_by(ProviderConfig.is_default.desc(), ProviderConfig.created_at, ProviderConfig.id).limit(1))
    return session.scalars(query).first()


def build(config: ProviderConfig) -> Provider:
    """The provider object the dispatcher sends through, from the config's kind class."""
    cls = provider_kinds.get(config.kind)
    if cls is None:
        raise InvalidState(f"provider config {config.name} uses kind '{config.kind}', which is not installed")
    remember_secrets(config.secrets)
    return cls(config.settings, config.secrets)


def resolve(session: Session, provider_id: int | None, channel: str) -> Provider | None:
    """The provider a message goes out through (the dispatcher's resolver): its node's
    config, else the channel's default (a deleted config's outbox rows lost their id), or
    None when there is none or its kind is not installed here."""
    config = session.get(ProviderConfig, provider_id) if provider_id is not None else None
    config = config or default_provider(session, channel)
    if config is None:
        return None
    if provider_kinds.get(config.kind) is None:
        log.error("provider config %s uses kind '%s', which is not installed", config.name, config.kind)
        return None
    return build(config)


def target_problems(session: Session, document: Mapping[str, Any]) -> list[Problem]:
    """The nodes of a campaign whose provider config (the one a node names, else its
    channel's default) points where outbound calls may not go: a config saved before the
    allow-list was narrowed, or before targets were checked. One problem per node, on the
    field that picks its provider."""
    problems: list[Problem] = []
    defaults: dict[str, ProviderConfig | None] = {}
    for index, node in enumerate(document.get("nodes") or []):
        channel = getattr(node_class(node), "channel", None)
        if channel not in CHANNELS:
            continue
        named = (node.get("settings") or {}).get("provider_id")
        if isinstance(named, int) and not isinstance(named, bool):
            config = session.get(ProviderConfig, named)
        else:
            if channel not in defaults:
                defaults[channel] = default_provider(session, channel)
            config = defaults[channel]
        if problem := _node_target_problem(index, node, config):
            problems.append(problem)
    return problems


def _node_target_problem(index: int, node: Mapping[str, Any], config: ProviderConfig | None) -> Problem | None:
    cls = provider_kinds.get(config.kind) if config is not None else None
    if config is None or cls is None or not (found := _target_problems(cls, config.settings)):
        return None
    field = found[0]["pointer"].rsplit("/", 1)[-1]
    title = cls.settings_schema.get("properties", {}).get(field, {}).get("title", field)
    return Problem("internal_address", f"Node '{label(node)}' sends through provider config '{config.name}', "
                                       f"whose {title} {found[0]['message']}",
                   f"/nodes/{index}/settings/provider_id", node.get("id"))


def public(config: ProviderConfig) -> dict[str, Any]:
    """What the API shows: everything but secret values (`secrets_set` says which are set)."""
    return {
        "id": config.id, "channel": config.channel, "kind": config.kind, "name": config.name,
        "settings": config.settings, "is_default": config.is_default,
        "secrets_set": {key: True for key, value in (config.secrets or {}).items() if value is not None},
        "created_at": iso(config.created_at), "updated_at": iso(config.updated_at),
    }


def describe_kinds() -> list[dict[str, Any]]:
    """Every installed provider kind with the schemas its forms are built from."""
    kinds = sorted(provider_kinds.kinds.values(), key=lambda cls: (cls.channel, cls.kind))
    return [{"kind": cls.kind, "channel": cls.channel, "label": cls.label,
             "settings_schema": cls.settings_schema, "secrets_schema": cls.secrets_schema} for cls in kinds]


# --------------------------------------------------------------------------- writing


def create_provider(session: Session, data: Mapping[str, Any]) -> ProviderConfig:
    """A new config. The channel's first becomes its default; `is_default: true` takes the
    flag from the current default."""
    data = _fields(data)
    channel, cls = _kind_of(data)
    _check_name(session, data["name"], None)
    secrets = _merge_secrets({}, data.get("secrets", {}))
    settings = data.get("settings", {})
    _validate(cls, settings, secrets)
    remember_secrets(secrets)
    _lock_channel(session, channel)
    first = default_provider(session, channel) is None
    if data.get("is_default") and not first:
        _clear_default(session, channel)
    config = ProviderConfig(channel=channel, kind=cls.kind, name=data["name"], settings=settings,
                            secrets=secrets, is_default=first or bool(data.get("is_default")))
    session.add(config)
    _flush_unique_name(session, config.name)
    log.info("provider config %s (%s, %s) created", config.name, config.channel, config.kind)
    return config


def update_provider(session: Session, provider_id: int, data: Mapping[str, Any]) -> ProviderConfig:
    """Change name, settings, secrets or the default flag. Settings, when given, replace the
    stored ones; secrets merge key by key (omitted: kept, null: removed). Channel and kind
    are fixed: another kind takes other settings, so it is another config."""
    data = _fields(data)
    config = get_provider(session, provider_id)
    _check_fixed(config, data)
    cls = _installed(config.kind, "/kind")
    if "name" in data:
        _check_name(session, data["name"], config.id)
    settings = data.get("settings", config.settings)
    secrets = _merge_secrets(config.secrets or {}, data.get("secrets", {}))
    _validate(cls, settings, secrets)
    remember_secrets(secrets)
    _set_default_flag(session, config, data.get("is_default"))
    config.name = data.get("name", config.name)
    config.settings, config.secrets = dict(settings), secrets
    _flush_unique_name(session, config.name)
    log.info("provider config %s (%s) updated", config.name, config.id)
    return config


def delete_provider(session: Session, provider_id: int) -> list[int]:
    """Remove the config; returns the active campaigns that named it, now suspended (their
    send steps would have nowhere to go). Deleting the default promotes the oldest left."""
    config = get_provider(session, provider_id)
    _lock_channel(session, config.channel)
    suspended = campaigns_using(session, config.id)
    _suspend(session, suspended, f"provider config {config.name} was removed")
    was_default, channel = config.is_default, config.channel
    session.delete(config)
    session.flush()
    if was_default:
        _promote_oldest(session, channel)
    log.info("provider config %s (%s) deleted; campaigns suspended: %s", config.name, config.id, suspended)
    return suspended


def campaigns_using(session: Session, provider_id: int) -> list[int]:
    """Active campaigns a node of which names `provider_id` in its settings, looking at the
    version new customers enter and every version customers are still on."""
    live_version = or_(
        CampaignVersion.id == Campaign.version_id,
        exists(select(Enrollment.id).where(Enrollment.version_id == CampaignVersion.id, ACTIVE)),
    )
    rows = session.execute(
        select(Campaign.id, CampaignVersion.document)
        .join(CampaignVersion, CampaignVersion.campaign_id == Campaign.id)
        .where(Campaign.status == "active", live_version)
    )
    return sorted({campaign_id for campaign_id, document in rows if _references(document, provider_id)})


# --------------------------------------------------------------------------- helpers: input


def _fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a body its schema checked (schemas/api/providers.schema.json), without
    the read-only ones a form sends back as it got them."""
    return {key: value for key, value in data.items() if key in FIELDS}


def _kind_of(data: Mapping[str, Any]) -> tuple[str, type[Provider]]:
    """(channel, kind class) of a new config: the kind installed, and of that channel."""
    channel = data["channel"]
    cls = _installed(data["kind"], "/kind")
    if cls.channel != channel:
        raise InvalidInput.field("/kind", f"'{cls.kind}' is a {cls.channel} provider, not a {channel} one")
    return channel, cls


def _installed(kind: str, pointer: str) -> type[Provider]:
    cls = provider_kinds.get(kind)
    if cls is None:
        known = ", ".join(sorted(provider_kinds.kinds)) or "none installed"
        raise InvalidInput.field(pointer, f"'{kind}' is not a provider kind (known: {known})", "unknown_kind")
    return cls


def _check_fixed(config: ProviderConfig, data: Mapping[str, Any]) -> None:
    for key in ("channel", "kind"):
        if key in data and data[key] != getattr(config, key):
            raise InvalidInput.field(f"/{key}", f"cannot be changed (it is '{getattr(config, key)}'); "
                                      "create a new provider config instead", "immutable_field")


def _check_name(session: Session, name: str, own_id: int | None) -> None:
    """A clear error for a taken name, before the unique constraint would refuse it."""
    query = select(ProviderConfig.id).where(ProviderConfig.name == name)
    if own_id is not None:
        query = query.where(ProviderConfig.id != own_id)
    if session.scalar(query) is not None:
        raise _name_taken(name)


def _merge_secrets(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Stored secrets updated by the given ones: null removes, an omitted key is kept."""
    merged = dict(stored)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _validate(cls: type[Provider], settings: Any, secrets: Mapping[str, Any]) -> None:
    """Settings and secrets against the kind's schemas, and the kind's targets against the
    outbound guard; every problem named by pointer. Messages about secrets never repeat the
    value."""
    problems = [*_schema_problems(cls.settings_schema, settings, "settings", reveal=True),
                *_schema_problems(cls.secrets_schema, secrets, "secrets", reveal=False),
                *_target_problems(cls, settings)]
    if problems:
        raise InvalidInput(_summary(problems), problems)


def _target_problems(cls: type[Provider], settings: Any) -> list[dict[str, Any]]:
    """A target (URL, SMTP host) that is or resolves to an internal address (engine/messaging/outbound.py)."""
    if not isinstance(settings, Mapping):
        return []
    return [_problem(pointer(["settings", name]), reason, "internal_address") for name in cls.targets
            if isinstance(settings.get(name), str) and (reason := outbound.refusal(settings[name]))]


def _schema_problems(schema: Mapping[str, Any], instance: Any, prefix: str, *, reveal: bool) -> list[dict[str, Any]]:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    problems: list[dict[str, Any]] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_explain(error, [prefix, *error.absolute_path], reveal))
    return problems


def _explain(error: ValidationError, path: list[Any], reveal: bool) -> list[dict[str, Any]]:
    """One problem per offending field: a missing or unknown key is named itself, not its object."""
    value, keyword, arg = error.instance, error.validator, error.validator_value
    if keyword == "required" and isinstance(value, Mapping):
        return [_problem(pointer([*path, name]), "is required", "missing_field") for name in arg if name not in value]
    if keyword == "additionalProperties" and arg is False and isinstance(value, Mapping):
        props, patterns = error.schema.get("properties", {}), error.schema.get("patternProperties", {})
        extra = [k for k in value if k not in props and not any(re.search(p, k) for p in patterns)]
        return [_problem(pointer([*path, k]), "is not a field of this provider kind", "unknown_field") for k in extra]
    return [_problem(pointer(path), error.message if reveal else _blind(error))]


def _blind(error: ValidationError) -> str:
    """What is wrong with a secret, without its value (jsonschema's messages quote it)."""
    keyword, arg = error.validator, error.validator_value
    if keyword == "type":
        return f"must be of type {arg if isinstance(arg, str) else ' or '.join(arg)}"
    if keyword == "minLength":
        return f"must be at least {arg} characters long"
    if keyword == "maxLength":
        return f"must be at most {arg} characters long"
    if keyword == "pattern":
        return f"does not match the expected pattern {arg}"
    return f"is not valid (fails '{keyword}')"


# --------------------------------------------------------------------------- helpers: store


def _set_default_flag(session: Session, config: ProviderConfig, flag: bool | None) -> None:
    """`true` takes the flag from the channel's current default; `false` on the default is
    refused, since a channel always has one (make another the default instead)."""
    if flag is None or flag == config.is_default:
        return
    if not flag:
        raise InvalidInput.field("/is_default", f"{config.name} is the {config.channel} default; make another "
                                      "config the default instead", "default_required")
    _lock_channel(session, config.channel)
    _clear_default(session, config.channel)
    config.is_default = True


def _clear_default(session: Session, channel: str) -> None:
    session.execute(update(ProviderConfig).where(ProviderConfig.channel == channel, ProviderConfig.is_default)
                    .values(is_default=False), execution_options={"synchronize_session": "fetch"})


def _promote_oldest(session: Session, channel: str) -> None:
    oldest = session.scalars(select(ProviderConfig).where(ProviderConfig.channel == channel)
                             .order_by(ProviderConfig.created_at, ProviderConfig.id).limit(1)).first()
    if oldest is not None:
        oldest.is_default = True


def _lock_channel(session: Session, channel: str) -> None:
    """Serialize default changes per channel on PostgreSQL (two first configs created at
    once would both become the default). SQLite transactions are serial already."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"provider_configs:{channel}".encode())
        session.execute(select(func.pg_advisory_xact_lock(key)))


def _flush_unique_name(session: Session, name: str) -> None:
    """Flush now, so a name a concurrent transaction took after `_check_name` looked is a
    NameTaken (409), not a 500. The transaction is spoiled then: the caller rolls back."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise _name_taken(name) from exc


def _suspend(session: Session, campaign_ids: list[int], reason: str) -> None:
    if campaign_ids:
        session.execute(update(Campaign).where(Campaign.id.in_(campaign_ids), Campaign.status == "active")
                        .values(status="suspended", status_reason=reason),
                        execution_options={"synchronize_session": "fetch"})


def _references(value: Any, provider_id: int) -> bool:
    """Whether a document names the provider in a `provider_id` setting at any depth of a
    node's settings (a node may keep per-variant settings)."""
    nodes = value.get("nodes", []) if isinstance(value, Mapping) else []
    return any(isinstance(node, Mapping) and _names_provider(node.get("settings"), provider_id) for node in nodes)


def _names_provider(value: Any, provider_id: int) -> bool:
    if isinstance(value, Mapping):
        found = value.get("provider_id")
        if isinstance(found, int) and not isinstance(found, bool) and found == provider_id:
            return True
        return any(_names_provider(v, provider_id) for v in value.values())
    if isinstance(value, list):
        return any(_names_provider(v, provider_id) for v in value)
    return False


def _problem(pointer: str, message: str, code: str = "invalid_field") -> dict[str, Any]:
    return {"pointer": pointer, "code": code, "message": message}


def _name_taken(name: str) -> NameTaken:
    message = f"a provider config named '{name}' already exists"
    return NameTaken(message, [_problem("/name", message, "name_taken")])


def _summary(problems: list[dict[str, Any]]) -> str:
    return "; ".join(f"{p['pointer'].lstrip('/') or 'body'} {p['message']}" for p in problems)






# --------------------------------------------------------------------------- log redaction

#: secrets shorter than this are not redacted: replacing "ab" everywhere would wreck logs
MIN_REDACTED_LENGTH = 4
_known: set[str] = set()
#: longest first (a longer secret may contain a shorter one); replaced whole, never mutated,
#: so the filter reads it without the lock
_known_sorted: tuple[str, ...] = ()
_known_lock = threading.Lock()


def remember_secrets(secrets: Any) -> None:
    """Add a config's secret values to what `RedactSecrets` hides. Everything that brings a
    secret into this process (a request body, a config loaded from the store) passes here,
    so the filter never needs the database (a query from inside logging could wait on the
    very transaction that is logging)."""
    global _known_sorted
    found = {text for leaf in _leaves(secrets) for text in _spellings(leaf) if len(text) >= MIN_REDACTED_LENGTH}
    if found - _known:
        with _known_lock:
            _known.update(found)
            _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def _leaves(value: Any) -> Iterator[str]:
    """Every string (or number) inside a secret, e.g. the fields of a service account JSON."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield str(value)


def _spellings(secret: str) -> set[str]:
    """The secret as logged raw, inside JSON and inside a repr (a multi-line private key
    shows up with escaped newlines there)."""
    return {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a log record (message, arguments, traceback)
    with "***". Install on handlers: a logger's own filters do not see propagated records."""

    MASK = "***"

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _known_sorted
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: keep its parts, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self._redact(message, secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info, secrets)
        return True

    def _redact(self, text: str, secrets: tuple[str, ...]) -> str:
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, self.MASK)
        return text


_filter = RedactSecrets()


def install_redaction(runtime: Any) -> RedactSecrets:
    """Load every configured secret, keep learning new ones as configs are loaded or saved,
    and put the filter on the root logger's handlers (call after logging is configured).
    Safe to call again: nothing is installed twice."""
    if not event.contains(ProviderConfig, "load", _on_load):
        event.listen(ProviderConfig, "load", _on_load)
        event.listen(ProviderConfig, "refresh", _on_refresh)
    with runtime.sessions() as session:
        for secrets in session.scalars(select(ProviderConfig.secrets)):
            remember_secrets(secrets)
    for handler in logging.getLogger().handlers:
        if _filter not in handler.filters:
            handler.addFilter(_filter)
    return _filter


def _on_load(config: ProviderConfig, _context: Any) -> None:
    remember_secrets(config.__dict__.get("secrets"))  # never trigger a load from inside one


def _on_refresh(config: ProviderConfig, _context: Any, _attrs: Any) -> None:
    remember_secrets(config.__dict__.get("secrets"))
