"""Provider configs over HTTP: the kinds a form can offer, and configs to list, create, edit
and delete. Secrets go in, never out: every response is built by `providers.public`."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from engine.core import db
from engine.messaging import providers
from engine.web.api import body, runtime
from engine.web.declare import accepts, args, query, responds

bp = Blueprint("providers", __name__, url_prefix="/api")


@bp.get("/provider-kinds")
@responds(200, schema={"type": "array", "items": {"type": "object"}})
def provider_kinds() -> ResponseReturnValue:
    return jsonify(providers.describe_kinds())


@bp.get("/providers")
@query("ChannelFilter")
def list_providers() -> ResponseReturnValue:
    with runtime().sessions() as session:
        items = [providers.public(c) for c in providers.list_providers(session, args().get("channel"))]
    return jsonify(items=items)


@bp.post("/providers")
@accepts("Provider")
@responds(201)
def create_provider() -> ResponseReturnValue:
    data = body()
    with db.transaction(runtime().sessions) as session:
        payload = providers.public(providers.create_provider(session, data))
    return jsonify(payload)


@bp.get("/providers/<int:provider_id>")
def get_provider(provider_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        return jsonify(providers.public(providers.get_provider(session, provider_id)))


@bp.put("/providers/<int:provider_id>")
@accepts("ProviderChange")
def update_provider(provider_id: int) -> ResponseReturnValue:
    data = body()
    with db.transaction(runtime().sessions) as session:
        payload = providers.public(providers.update_provider(session, provider_id, data))
    return jsonify(payload)


@bp.delete("/providers/<int:provider_id>")
def delete_provider(provider_id: int) -> ResponseReturnValue:
    """Answers which active campaigns were suspended because they named this config."""
    with db.transaction(runtime().sessions) as session:
        suspended = providers.delete_provider(session, provider_id)
    return jsonify(deleted=provider_id, suspended_campaigns=suspended)

