"""The merge context of a recipient: profile, event and campaign as plain data, with the
template's declared defaults for missing values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from engine.core.templates.sandbox import _is_blank

#: the names a template may start a merge tag with
ROOTS = ("profile", "event", "campaign")
#: profile columns in the merge context (with `attributes`)
PROFILE_FIELDS = ("external_id", "email", "phone", "timezone", "points")


# --------------------------------------------------------------------------- the context


def _plain(value: Any, depth: int = 0) -> Any:
    """A deep copy made of dicts, lists, strings, numbers, booleans and null only: whatever
    the caller passes, the template sees no object with methods, and cannot see our copies
    change (defaults are filled into it)."""
    if depth > 32:
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a Markup value would skip escaping
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _with_defaults(context: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Fill declared defaults ("profile.attributes.first_name": "there") where the value is
    absent, null or ""."""
    for path, value in defaults.items():
        *parents, last = str(path).split(".")
        target: Any = context
        for key in parents:
            if not isinstance(target, dict):
                break
            if _is_blank(target.get(key)):
                target[key] = {}
            target = target[key]
        if isinstance(target, dict) and _is_blank(target.get(last)):
            target[last] = _plain(value)
    return context


def _read(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def context_for(profile: Mapping[str, Any] | Any, event: Mapping[str, Any] | None = None,
                campaign: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The merge context for one recipient.

    profile: a mapping (or a Profile row) with external_id, email, phone, timezone, points
    and attributes. event: the trigger, {"name", "properties"} (an enrollment's stored
    context {"event", "properties"} works too), or None. campaign: {"id", "name"} or None.
    Result: {"profile": {...fields, "attributes": {...}}, "event": {"name", "properties"} or
    {}, "campaign": {"id", "name"} or {}}.
    """
    fields = {name: _plain(_read(profile, name)) for name in PROFILE_FIELDS}
    attributes = _read(profile, "attributes")
    fields["attributes"] = _plain(attributes) if isinstance(attributes, Mapping) else {}
    return {"profile": fields, "event": _event_context(event), "campaign": _campaign_context(campaign)}


def _event_context(event: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(event, Mapping) or not event:
        return {}
    properties = event.get("properties")
    return {"name": _plain(event.get("name", event.get("event"))),
            "properties": _plain(properties) if isinstance(properties, Mapping) else {}}


def _campaign_context(campaign: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(campaign, Mapping) or not campaign:
        return {}
    return {"id": _plain(campaign.get("id")), "name": _plain(campaign.get("name"))}
