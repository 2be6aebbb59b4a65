"""Channel content: the fields each channel's content has, the merge tags the canvas
offers, and the checks a template's content and defaults pass before they are saved."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from engine.core.errors import InvalidInput
from engine.core.pointers import token
from engine.core.templates.context import ROOTS
from engine.core.templates.rendering import Renderer, _pointer

#: per channel: the content fields and their kind (text/html: a template string; pairs: an
#: object of template strings; json: any JSON value whose strings are templates)
CHANNEL_FIELDS: dict[str, dict[str, str]] = {
    "email": {"subject": "text", "preheader": "text", "html": "html", "text": "text", "from_name": "text"},
    "sms": {"body": "text"},
    "push": {"title": "text", "body": "text", "image": "text", "data": "pairs"},
    "webapi": {"body": "json"},
    "loyalty": {"amount": "json", "expires_in": "text", "legal_entity": "text", "description": "text"},
}


# --------------------------------------------------------------------------- merge tags


_STATIC_TAGS = (
    ("profile.email", "Email", "profile"), ("profile.phone", "Phone", "profile"),
    ("profile.external_id", "External ID", "profile"), ("profile.timezone", "Time zone", "profile"),
    ("profile.points", "Points", "profile"), ("event.name", "Event name", "event"),
    ("campaign.name", "Campaign name", "campaign"), ("campaign.id", "Campaign ID", "campaign"),
)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def merge_tags(channel: str, attributes: Iterable[str] = (),
               event_properties: Iterable[str] = ()) -> list[dict[str, str]]:
    """The tags the canvas offers for insertion: [{"label", "tag", "path", "group"}]. The
    fixed profile, event and campaign fields, plus the customer attribute and event property
    names the caller knows of (names starting with "_" are skipped: templates cannot read them)."""
    if channel not in CHANNEL_FIELDS:
        raise InvalidInput.field("channel", f"must be one of {', '.join(CHANNEL_FIELDS)}")
    tags = [_tag(path, label, group) for path, label, group in _STATIC_TAGS]
    tags += [_tag(_path("profile.attributes", name), name, "attributes") for name in _names(attributes)]
    tags += [_tag(_path("event.properties", name), name, "event") for name in _names(event_properties)]
    return tags


def _names(names: Iterable[str]) -> list[str]:
    return sorted({n for n in names if isinstance(n, str) and n and not n.startswith("_")})


def _path(prefix: str, name: str) -> str:
    """`prefix.name`, or `prefix["first name"]` when the name is not an identifier."""
    return f"{prefix}.{name}" if _IDENTIFIER.match(name) else f"{prefix}[{_quote(name)}]"


def _quote(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _tag(path: str, label: str, group: str) -> dict[str, str]:
    return {"label": label, "tag": "{{ " + path + " }}", "path": path, "group": group}


# --------------------------------------------------------------------------- validation


def validate_content(channel: object, content: Any) -> None:
    """Check content before it is stored: InvalidInput for a missing, unknown or mistyped
    field, TemplateError (every syntax error and forbidden construct, with field and line)."""
    if channel not in CHANNEL_FIELDS:
        raise InvalidInput.field("/channel", f"must be one of {', '.join(CHANNEL_FIELDS)}")
    if not isinstance(content, Mapping):
        raise InvalidInput.field("/content", "must be an object")
    kinds = CHANNEL_FIELDS[channel]
    for key, value in content.items():
        _check_field(channel, key, kinds.get(key), value)
    _check_required(channel, content)
    Renderer(content)


def _check_field(channel: str, key: Any, kind: str | None, value: Any) -> None:
    pointer = _pointer((key,))
    if kind is None:
        raise InvalidInput.field(pointer, f"is not a {channel} field (expected {', '.join(CHANNEL_FIELDS[channel])})")
    if kind in ("text", "html") and value is not None and not isinstance(value, str):
        raise InvalidInput.field(pointer, "must be a string")
    if kind == "pairs" and value is not None:
        if not isinstance(value, Mapping):
            raise InvalidInput.field(pointer, "must be an object of strings")
        for name, item in value.items():
            if not isinstance(item, str):
                raise InvalidInput.field(_pointer((key, name)), "must be a string")


def _check_required(channel: str, content: Mapping[str, Any]) -> None:
    def given(key: str) -> bool:
        value = content.get(key)
        return isinstance(value, str) and value.strip() != ""

    if channel == "email" and not given("subject"):
        raise InvalidInput.field("/content/subject", "is required", "missing_field")
    if channel == "email" and not (given("html") or given("text")):
        raise InvalidInput.field("/content/html", "is required (or text)", "missing_field")
    if channel == "sms" and not given("body"):
        raise InvalidInput.field("/content/body", "is required", "missing_field")
    if channel == "push" and not (given("title") or given("body")):
        raise InvalidInput.field("/content/title", "is required (or body)", "missing_field")
    if channel == "webapi" and content.get("body") is None:
        raise InvalidInput.field("/content/body", "is required", "missing_field")
    if channel == "loyalty" and content.get("amount") in (None, ""):
        raise InvalidInput.field("/content/amount", "is required", "missing_field")


def validate_defaults(defaults: Any) -> None:
    """Declared defaults: {"profile.attributes.first_name": "there"}; each key a dotted path
    under profile, event or campaign, each value a string, number or boolean."""
    if not isinstance(defaults, Mapping):
        raise InvalidInput.field("/defaults", "must be an object")
    for key, value in defaults.items():
        pointer = "/defaults/" + token(key)
        parts = str(key).split(".")
        if len(parts) < 2 or parts[0] not in ROOTS or any(not p or p.startswith("_") for p in parts):
            raise InvalidInput.field(pointer, f"must be a dotted path under {', '.join(ROOTS)} "
                                    "(e.g. profile.attributes.first_name)")
        if value is None or not isinstance(value, (str, int, float)) or (isinstance(value, str) and len(value) > 1000):
            raise InvalidInput.field(pointer, "must be a string (up to 1000 characters), number or boolean")
