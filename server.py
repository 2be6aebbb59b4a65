"""The web server: REST API under /api/, the canvas UI, live statistics over Socket.IO.

Errors become `{"error": {"code", "message", "details"}}` here and only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, jsonify, request, send_from_directory
from flask_socketio import SocketIO, join_room
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from engine import campaigns, clock, db, registry
from engine import auth as access_auth
from engine.api import access, body, iso
from engine.api.access import read_only
from engine.api import profiles as profiles_api
from engine.api import providers as providers_api
from engine.api import templates as templates_api
from engine.api import webhooks as webhooks_api
from engine.errors import CampaignCanvasError, NotFound
from engine.models import Campaign, CampaignVersion
from engine.runtime import Runtime
from engine.stats import node_stats
from engine.validation import validate_document

#: API areas in modules of their own (engine/api/)
BLUEPRINTS: list[Blueprint] = [
    providers_api.bp,
    templates_api.bp,
    profiles_api.bp,
    webhooks_api.bp,
]

UI_DIST = Path(__file__).parent / "canvas_ui" / "dist"
UI_PLACEHOLDER = Path(__file__).parent / "canvas_ui" / "placeholder"
TEMPLATES = Path(__file__).parent / "canvas_ui" / "templates"


def create_app(rt: Runtime) -> tuple[Flask, SocketIO]:
    registry.load()
    app = Flask(__name__, static_folder=None, template_folder=str(TEMPLATES))
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["campaign_canvas"] = rt
    access.install(app, rt.settings)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    socketio = SocketIO(app, async_mode="threading")
    rt.executor.listeners.append(
        lambda campaign_id, _v, _counts: socketio.emit("stats", {"campaign_id": campaign_id},
                                                       to=f"campaign:{campaign_id}"))

    @app.errorhandler(CampaignCanvasError)
    def on_error(exc: CampaignCanvasError):  # type: ignore[no-untyped-def]
        return jsonify(error=exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error={"code": code, "message": exc.description, "details": []}), exc.code

    @app.get("/api/node-types")
    def node_types():  # type: ignore[no-untyped-def]
        return jsonify([cls.describe() for cls in registry.all_types()])

    @app.get("/api/campaigns")
    def list_campaigns():  # type: ignore[no-untyped-def]
        query = select(Campaign).order_by(Campaign.id.desc())
        if status := request.args.get("status"):
            query = query.where(Campaign.status == status)
        if q := request.args.get("q"):
            query = query.where(Campaign.name.ilike(f"%{q}%"))
        with rt.sessions() as session:
            items = [_campaign_json(c) for c in session.scalars(query)]
        if tag := request.args.get("tag"):
            items = [c for c in items if tag in c["tags"]]
        return jsonify(items=items)

    @app.post("/api/campaigns")
    def create_campaign():  # type: ignore[no-untyped-def]
        document = body()
        with db.transaction(rt.sessions) as session:
            campaign = campaigns.create(session, document)
            payload = _campaign_json(campaign, document)
        return jsonify(payload), 201

    @app.get("/api/campaigns/<int:campaign_id>")
    def get_campaign(campaign_id: int):  # type: ignore[no-untyped-def]
        with rt.sessions() as session:
            campaign = campaigns.get(session, campaign_id)
            version = session.get(CampaignVersion, campaign.version_id)
            return jsonify(_campaign_json(campaign, version.document if version else None))

    @app.put("/api/campaigns/<int:campaign_id>")
    def update_campaign(campaign_id: int):  # type: ignore[no-untyped-def]
        document = body()
        with db.transaction(rt.sessions) as session:
            version = campaigns.save(session, campaign_id, document)
            payload = _campaign_json(campaigns.get(session, campaign_id), version.document)
        return jsonify(payload)

    @app.post("/api/campaigns/validate")
    @read_only
    def validate_unsaved():  # type: ignore[no-untyped-def]
        problems = validate_document(body())
        return jsonify(problems=[p.to_dict() for p in problems])

    @app.post("/api/campaigns/<int:campaign_id>/launch")
    def launch(campaign_id: int):  # type: ignore[no-untyped-def]
        with db.transaction(rt.sessions) as session:
            entered = campaigns.launch(session, campaign_id, clock.now())
            payload = {**_campaign_json(campaigns.get(session, campaign_id)), "entered": entered}
        return jsonify(payload)

    @app.post("/api/campaigns/<int:campaign_id>/<any(pause, resume, stop):action>")
    def change_status(campaign_id: int, action: str):  # type: ignore[no-untyped-def]
        with db.transaction(rt.sessions) as session:
            if action == "pause":
                campaigns.pause(session, campaign_id)
            elif action == "resume":
                campaigns.resume(session, campaign_id, clock.now())
            else:
                campaigns.stop(session, campaign_id, clock.now())
            payload = _campaign_json(campaigns.get(session, campaign_id))
        socketio.emit("status", payload, to=f"campaign:{campaign_id}")
        return jsonify(payload)

    @app.get("/api/campaigns/<int:campaign_id>/stats")
    def stats(campaign_id: int):  # type: ignore[no-untyped-def]
        with rt.sessions() as session:
            campaigns.get(session, campaign_id)
            return jsonify(nodes=node_stats(session, campaign_id))

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> bool:
        """Live statistics are for logged-in users and API keys (`auth={"token": key}`)."""
        return _socket_allowed(rt, auth)

    @socketio.on("join")
    def on_join(data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("campaign_id"), int):
            join_room(f"campaign:{data['campaign_id']}")

    @app.get("/")
    @app.get("/<path:path>")
    def ui(path: str = "index.html"):  # type: ignore[no-untyped-def]
        folder = UI_DIST if (UI_DIST / "index.html").exists() else UI_PLACEHOLDER
        if path.startswith("api/"):
            raise NotFound(f"no API endpoint at /{path}")
        target = folder / path
        return send_from_directory(folder, path if target.is_file() else "index.html")

    return app, socketio


def _socket_allowed(rt: Runtime, auth: Any) -> bool:
    from flask import session

    token = auth.get("token") if isinstance(auth, dict) else None
    with db.transaction(rt.sessions) as s:
        if isinstance(token, str) and token:
            return access_auth.key_principal(s, token) is not None
        user_id = session.get("user_id")
        return isinstance(user_id, int) and access_auth.user_principal(s, user_id) is not None


def _campaign_json(campaign: Campaign, document: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {
        "id": campaign.id, "name": campaign.name, "description": campaign.description, "tags": campaign.tags,
        "status": campaign.status, "status_reason": campaign.status_reason, "version_id": campaign.version_id,
        "created_at": iso(campaign.created_at), "updated_at": iso(campaign.updated_at),
        "launched_at": iso(campaign.launched_at), "finished_at": iso(campaign.finished_at),
    }
    if document is not None:
        data["document"] = document
    return data


