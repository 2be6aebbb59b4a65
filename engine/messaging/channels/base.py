"""The provider contract every channel implements: the message going out, the result of a
send, the provider base class and the registry of provider kinds."""


from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

CHANNELS = ("email", "sms", "push", "webapi", "loyalty")

#: every provider kind waits this long for an answer unless its `timeout` setting says otherwise
DEFAULT_TIMEOUT = 30.0
TIMEOUT_SETTING = {"type": "number", "title": "Timeout (seconds)", "exclusiveMinimum": 0, "default": DEFAULT_TIMEOUT}


@dataclass
class OutgoingMessage:
    outbox_id: int
    profile_id: int
    to: str
    #: rendered content: email {"subject", "preheader", "html", "text", "from_name"?};
    #: sms {"body"}; push {"title", "body", "image", "data"}; webapi {"body": JSON value};
    #: loyalty {"amount", "expires_in", "legal_entity", "description"}
    content: dict[str, Any]
    category: str = ""


@dataclass
class SendResult:
    outbox_id: int
    ok: bool
    provider_message_id: str | None = None
    error: str | None = None
    #: worth retrying later (rate limit, 5xx, could not connect); otherwise the failure is final
    transient: bool = False
    #: the request may have reached the provider (e.g. timed out waiting for the answer): not
    #: safe to retry; the dispatcher leaves it to recovery, which asks the provider
    unknown: bool = False


class TransientError(Exception):
    """The whole batch failed in a way worth retrying (network, 429, 5xx)."""


class Provider:
    """Base class for provider kinds. Instances are built from a stored ProviderConfig."""

    kind: ClassVar[str]
    channel: ClassVar[str]
    label: ClassVar[str]
    #: messages one `send` call may take (SendGrid: 1000 personalizations)
    max_batch: ClassVar[int] = 100
    settings_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    #: the fields kept in ProviderConfig.secrets and never shown back
    secrets_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    #: settings saying where the provider connects (URLs, or an SMTP host): a config whose
    #: target is an internal address is refused when saved (engine/messaging/outbound.py)
    targets: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any]):
        self.settings = dict(settings)
        self.secrets = dict(secrets)

    def send(self, messages: list[OutgoingMessage], batch_key: str) -> list[SendResult]:
        """Send up to `max_batch` messages; one result per message, in any order. Raise
        TransientError when nothing was sent and a retry may work."""
        raise NotImplementedError

    def accepted(self, batch_key: str) -> set[int] | None:
        """Outbox ids of `batch_key` the provider has accepted, or None when it cannot tell."""
        return None

    @property
    def accepted_settle(self) -> timedelta:
        """How long after a send `accepted` may still miss messages the provider has (its
        activity data lags); only after that is a missing message taken as never sent."""
        return timedelta(0)

    def __repr__(self) -> str:  # never the secrets
        return f"<{type(self).__name__} {self.settings!r}>"


@dataclass
class ProviderKinds:
    kinds: dict[str, type[Provider]] = field(default_factory=dict)

    def register(self, cls: type[Provider]) -> type[Provider]:
        self.kinds[cls.kind] = cls
        return cls

    def get(self, kind: str) -> type[Provider] | None:
        return self.kinds.get(kind)


provider_kinds = ProviderKinds()
