"""Message templates over HTTP: list, create, edit, delete, preview with a customer's data,
and the merge tags the canvas offers. Content is validated (required fields, syntax with
line numbers, the sandbox's rules) before anything is stored, so a bad template stores nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.core import db
from engine.core.errors import NameTaken, NotFound
from engine.core.models import Profile, Template
from engine.core.templates import (
    context_for,
    merge_tags,
    render,
    validate_content,
    validate_defaults,
)
from engine.web.access import read_only
from engine.web.api import body, iso, runtime
from engine.web.declare import accepts, args, query, responds

bp = Blueprint("templates", __name__, url_prefix="/api")

#: fields a client may write (the schema accepts and ignores those GET adds)
FIELDS = ("channel", "name", "content", "defaults")
#: how many of the newest profiles are sampled for attribute names to offer as merge tags
ATTRIBUTE_SAMPLE = 200


@bp.get("/templates")
@query("ChannelFilter")
def list_templates() -> ResponseReturnValue:
    query = select(Template).order_by(Template.channel, Template.name, Template.id)
    if (channel := args().get("channel")) is not None:
        query = query.where(Template.channel == channel)
    with runtime().sessions() as session:
        return jsonify(items=[_template_json(t) for t in session.scalars(query)])


@bp.post("/templates")
@accepts("Template")
@responds(201)
def create_template() -> ResponseReturnValue:
    fields = _fields(body(), {})
    with db.transaction(runtime().sessions) as session:
        _check_name(session, fields["channel"], fields["name"], None)
        template = Template(**fields)
        session.add(template)
        _flush(session, fields["channel"], fields["name"])
        payload = _template_json(template)
    return jsonify(payload)


@bp.get("/templates/<int:template_id>")
def get_template(template_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        return jsonify(_template_json(_get(session, template_id)))


@bp.put("/templates/<int:template_id>")
@accepts("TemplateChange")
def update_template(template_id: int) -> ResponseReturnValue:
    """Fields left out keep their stored values; what is given is validated as a whole."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        template = _get(session, template_id)
        fields = _fields(data, {"channel": template.channel, "name": template.name,
                                "content": template.content, "defaults": template.defaults})
        _check_name(session, fields["channel"], fields["name"], template_id)
        for key, value in fields.items():
            setattr(template, key, value)
        _flush(session, fields["channel"], fields["name"])
        payload = _template_json(template)
    return jsonify(payload)


@bp.delete("/templates/<int:template_id>")
def delete_template(template_id: int) -> ResponseReturnValue:
    with db.transaction(runtime().sessions) as session:
        session.delete(_get(session, template_id))
    return jsonify(deleted=template_id)


@bp.post("/templates/<int:template_id>/preview")
@read_only
@accepts("TemplatePreview")
def preview_template(template_id: int) -> ResponseReturnValue:
    """Body: {"profile_id": n} or {"profile": {...}}, optional "event" {"name", "properties"}
    and "campaign" {"id", "name"}. Answers the rendered content."""
    data = body()
    with runtime().sessions() as session:
        template = _get(session, template_id)
        context = _preview_context(session, data)
        channel, content, defaults = template.channel, template.content, template.defaults
    return jsonify(channel=channel, content=render(content, context, defaults))


@bp.post("/templates/preview")
@read_only
@accepts("UnsavedPreview")
def preview_unsaved() -> ResponseReturnValue:
    """Preview content before saving it: the POST /templates body plus the preview fields."""
    data = body()
    channel, content = data.get("channel"), data.get("content")
    validate_content(channel, content)
    defaults = data.get("defaults") or {}
    validate_defaults(defaults)
    with runtime().sessions() as session:
        context = _preview_context(session, data)
    return jsonify(channel=channel, content=render(content, context, defaults))


@bp.get("/merge-tags")
@query("ChannelFilter")
def list_merge_tags() -> ResponseReturnValue:
    """The fixed tags plus the attribute names found on the newest profiles."""
    channel = args().get("channel", "email")
    with runtime().sessions() as session:
        rows = session.scalars(select(Profile.attributes).order_by(Profile.id.desc()).limit(ATTRIBUTE_SAMPLE))
        names = {key for attributes in rows if isinstance(attributes, Mapping) for key in attributes}
    return jsonify(items=merge_tags(channel, names))


# --------------------------------------------------------------------------- helpers


def _fields(data: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`current` (stored values) overlaid with the body (checked by its schema); the content
    compiled (syntax with line numbers, the sandbox's rules)."""
    fields = {**current, **{k: v for k, v in data.items() if k in FIELDS}}
    fields = {**fields, "name": fields["name"].strip(), "defaults": fields.get("defaults") or {}}
    validate_content(fields.get("channel"), fields.get("content"))
    validate_defaults(fields["defaults"])
    return fields


def _check_name(session: Session, channel: str, name: str, template_id: int | None) -> None:
    query = select(Template.id).where(Template.channel == channel, Template.name == name)
    if template_id is not None:
        query = query.where(Template.id != template_id)
    if session.scalar(query) is not None:
        raise _name_taken(channel, name)


def _flush(session: Session, channel: str, name: str) -> None:
    """A name a concurrent request took after `_check_name` looked is a 409, not a 500."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise _name_taken(channel, name) from exc


def _name_taken(channel: str, name: str) -> NameTaken:
    message = f"a {channel} template named '{name}' already exists"
    return NameTaken(message, [{"pointer": "/name", "code": "name_taken", "message": message}])


def _get(session: Session, template_id: int) -> Template:
    template = session.get(Template, template_id)
    if template is None:
        raise NotFound(f"template {template_id} does not exist")
    return template


def _preview_context(session: Session, data: dict[str, Any]) -> dict[str, Any]:
    """The merge context a preview body (checked by its schema) names."""
    profile: Any = data.get("profile") or {}
    if "profile_id" in data:
        profile = _stored_profile(session, data["profile_id"])
    return context_for(profile, data.get("event") or None, data.get("campaign") or None)


def _stored_profile(session: Session, profile_id: int) -> Profile:
    profile = session.get(Profile, profile_id) if 0 < profile_id < 2**63 else None
    if profile is None:
        raise NotFound(f"profile {profile_id} does not exist", [{"pointer": "/profile_id"}])
    return profile


def _template_json(template: Template) -> dict[str, Any]:
    return {"id": template.id, "channel": template.channel, "name": template.name, "content": template.content,
            "defaults": template.defaults, "created_at": iso(template.created_at),
            "updated_at": iso(template.updated_at)}

