"""The web server: REST API under /api/, the canvas UI, live statistics over Socket.IO.

Errors become `{"error": {"code", "message", "details"}}` here and only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, jsonify, request, send_from_directory, session
from flask_socketio import SocketIO, join_room
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from engine import auth, db, live, registry
from engine.api import access, openapi
from engine.api import audiences as audiences_api
from engine.api import campaigns as campaigns_api
from engine.api import events as events_api
from engine.api import metrics as metrics_api
from engine.api import profiles as profiles_api
from engine.api import providers as providers_api
from engine.api import segments as segments_api
from engine.api import templates as templates_api
from engine.api import webhooks as webhooks_api
from engine.errors import CampaignCanvasError, InvalidInput, NotFound
from engine.models import MAX_ID
from engine.runtime import Runtime

#: API areas in modules of their own (engine/api/)
BLUEPRINTS: list[Blueprint] = [
    campaigns_api.bp,
    openapi.bp,
    events_api.bp,
    providers_api.bp,
    templates_api.bp,
    profiles_api.bp,
    profiles_api.imports_bp,
    segments_api.bp,
    audiences_api.bp,
    webhooks_api.bp,
    metrics_api.bp,
]

UI_DIST = Path(__file__).parent / "canvas_ui" / "dist"
UI_PLACEHOLDER = Path(__file__).parent / "canvas_ui" / "placeholder"
TEMPLATES = Path(__file__).parent / "canvas_ui" / "templates"


class DatabaseId(IntegerConverter):
    """`<int:...>` in our URLs: an id an INTEGER column can hold; a larger number is no id of
    ours (404), not a database overflow. `<bigid:...>` for the BIGINT tables (profiles...)."""

    limit = MAX_ID

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", self.limit)
        super().__init__(url_map, *args, **kwargs)


class BigDatabaseId(DatabaseId):
    limit = 2**63 - 1


def create_app(rt: Runtime, *, message_queue: bool = True) -> tuple[Flask, SocketIO]:
    """The app and its SocketIO. `message_queue=False` keeps Socket.IO in this process only
    (no Redis pub/sub): for Flask-SocketIO's test client, which refuses a message queue."""
    registry.load()
    app = Flask(__name__, static_folder=None, template_folder=str(TEMPLATES))
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["campaign_canvas"] = rt
    app.url_map.converters.update(int=DatabaseId, bigid=BigDatabaseId)
    access.install(app, rt.settings)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # on the message queue: events published by any process (workers, other servers) reach
    # this server's clients; see engine/live.py
    socketio = SocketIO(app, async_mode="threading",
                        **({"client_manager": live.client_manager(rt, write_only=False)} if message_queue else {}))
    publisher = live.install(rt, lambda event, data, to: socketio.emit(event, data, to=to))

    @app.before_request
    def refuse_nul_characters() -> None:
        """No database text column holds NUL: refuse it in a URL as `body()` does in JSON."""
        if "\x00" in request.path:
            raise InvalidInput.field("path", "must not contain the NUL character (%00)")
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise InvalidInput.field(name.replace("\x00", ""), "must not contain the NUL character (%00)")

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

    app.extensions[campaigns_api.STATUS_LISTENERS] = [publisher.status]

    @socketio.on("connect")
    def on_connect(credentials: Any = None) -> bool:
        """Live statistics are for logged-in users and API keys (`auth={"token": key}`)."""
        return _socket_allowed(rt, credentials)

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


def _socket_allowed(rt: Runtime, credentials: Any) -> bool:
    token = credentials.get("token") if isinstance(credentials, dict) else None
    with db.transaction(rt.sessions) as s:
        if isinstance(token, str) and token:
            return auth.key_principal(s, token) is not None
        user_id = session.get("user_id")
        return isinstance(user_id, int) and auth.user_principal(s, user_id) is not None
