"""The web server: REST API under /api/, the canvas UI, live statistics over Socket.IO.

Errors become `{"error": {"code", "message", "details"}}` here and only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    jsonify,
    request,
    send_from_directory,
    session,
)
from flask.typing import ResponseReturnValue
from flask_socketio import SocketIO, join_room, leave_room
from werkzeug import exceptions as werkzeug_exceptions
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, PathConverter

from engine.core import db, registry
from engine.core.errors import CampaignCanvasError, InvalidInput, NotFound
from engine.core.models import MAX_ID
from engine.ops import auth, live
from engine.ops.runtime import Runtime
from engine.web import access, bodies, openapi
from engine.web.api import audiences as audiences_api
from engine.web.api import campaigns as campaigns_api
from engine.web.api import events as events_api
from engine.web.api import metrics as metrics_api
from engine.web.api import node_types as node_types_api
from engine.web.api import polls as polls_api
from engine.web.api import popups as popups_api
from engine.web.api import profiles as profiles_api
from engine.web.api import providers as providers_api
from engine.web.api import reports as reports_api
from engine.web.api import segments as segments_api
from engine.web.api import templates as templates_api
from engine.web.api import webhooks as webhooks_api

#: API areas in modules of their own (engine/web/api/)
BLUEPRINTS: list[Blueprint] = [
    campaigns_api.bp,
    reports_api.bp,
    node_types_api.bp,
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
    popups_api.bp,
    polls_api.bp,
]

ROOT = Path(__file__).resolve().parents[2]
UI_DIST = ROOT / "canvas_ui" / "dist"
UI_PLACEHOLDER = ROOT / "canvas_ui" / "placeholder"
TEMPLATES = ROOT / "canvas_ui" / "templates"

#: What a page of ours may load: only this origin's scripts, styles, images, fonts and
#: connections (Socket.IO included), never frames or plugins. 'unsafe-eval' because the
#: settings forms compile the node types' JSON Schemas with ajv (`new Function`); inline
#: styles because React Flow positions nodes with style attributes. No inline scripts.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
#: Vite names the files under assets/ by their content hash: a changed file is a new name
ASSETS_CACHE = "public, max-age=31536000, immutable"


class DatabaseId(IntegerConverter):
    """`<int:...>` in our URLs: an id an INTEGER column can hold; a larger number is no id of
    ours: 404 (not a database overflow, nor a 405 because another route of the path takes
    another method). `<bigid:...>` for the BIGINT tables (profiles...)."""

    limit = MAX_ID

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > self.limit:
            raise werkzeug_exceptions.NotFound(f"no id of ours is as large as {value}")
        return number


class BigDatabaseId(DatabaseId):
    limit = 2**63 - 1


class PagePath(PathConverter):
    """A path the browser UI routes itself: anything but the API's, so an API path no route
    takes is a 404, whatever its method (not a 405 because the UI takes GET)."""

    regex = r"(?!api(?:/|$))[^/].*?"


def create_app(rt: Runtime, *, message_queue: bool = True) -> tuple[Flask, SocketIO]:
    """The app and its SocketIO. `message_queue=False` keeps Socket.IO in this process only
    (no Redis pub/sub): for Flask-SocketIO's test client, which refuses a message queue."""
    registry.load()
    app = Flask(__name__, static_folder=None, template_folder=str(TEMPLATES))
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["campaign_canvas"] = rt
    app.url_map.converters.update(int=DatabaseId, bigid=BigDatabaseId, page=PagePath)
    if rt.settings.proxy_hops:  # the client's address, as the proxies in front tell it (sign-in throttling)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=rt.settings.proxy_hops)  # type: ignore[method-assign]
    bodies.install(app, rt.settings)
    access.install(app, rt.settings)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # on the message queue: events published by any process (workers, other servers) reach
    # this server's clients; see engine/ops/live.py
    socketio = SocketIO(app, async_mode="threading",
                        **({"client_manager": live.client_manager(rt, write_only=False)} if message_queue else {}))

    def emit(event: str, data: dict[str, Any], to: str | list[str]) -> None:
        socketio.emit(event, data, to=to)

    publisher = live.install(rt, live.server_emitter(rt, emit) if message_queue else emit)

    @app.before_request
    def refuse_nul_characters() -> None:
        """No database text column holds NUL: refuse it in a URL as `body()` does in JSON."""
        if "\x00" in request.path:
            raise InvalidInput.field("path", "must not contain the NUL character (%00)")
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise InvalidInput.field(name.replace("\x00", ""), "must not contain the NUL character (%00)")

    @app.errorhandler(CampaignCanvasError)
    def on_error(exc: CampaignCanvasError) -> ResponseReturnValue:
        return jsonify(error=exc.to_dict()), exc.status, exc.headers()

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> ResponseReturnValue:
        if isinstance(exc, RequestEntityTooLarge):
            return on_error(bodies.too_large())
        code = (exc.name or "error").lower().replace(" ", "_")
        answer = jsonify(error={"code": code, "message": exc.description, "details": []})
        return answer if exc.code is None else (answer, exc.code)

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        """On every answer, pages and API alike: whatever slips through the escaping cannot
        run or load anything foreign, and no other site can frame us (clickjacking)."""
        response.headers.update(SECURITY_HEADERS)
        return response

    app.extensions[campaigns_api.STATUS_LISTENERS] = [publisher.status]

    @socketio.on("connect")
    def on_connect(credentials: Any = None) -> bool:
        """Live statistics are for logged-in users and API keys (`auth={"token": key}`)."""
        return _socket_allowed(rt, credentials)

    @socketio.on("join")
    def on_join(data: Any) -> bool:
        """The answer (a Socket.IO acknowledgement) tells the page it is in the room, so it
        can read the current figures knowing no later change will pass it by."""
        if (name := live_room(data)) is None:
            return False
        join_room(name)
        return True

    @socketio.on("leave")
    def on_leave(data: Any) -> None:
        """A page that stops showing a campaign (or the list) stops receiving its events."""
        if (name := live_room(data)) is not None:
            leave_room(name)

    @app.get("/")
    @app.get("/<page:path>")
    @access.page
    def ui(path: str = "index.html") -> ResponseReturnValue:
        return ui_file(path)

    return app, socketio


def live_room(data: Any) -> str | None:
    """The room a `join` / `leave` payload names: `{"campaign_id": id}`, a campaign's canvas,
    or `{"campaigns": true}`, the campaigns list (engine/ops/live.py); None for anything else."""
    if not isinstance(data, dict):
        return None
    if data.get("campaigns") is True:
        return live.CAMPAIGNS_ROOM
    campaign_id = data.get("campaign_id")
    if isinstance(campaign_id, int) and not isinstance(campaign_id, bool):
        return live.room(campaign_id)
    return None


def ui_file(path: str) -> Response:
    """A file of the built UI (the placeholder page until there is one); index.html for any
    other path, since the UI routes in the browser. index.html is revalidated on every
    visit, so a new build is seen at once, while the hashed assets it names are cached for
    good. A missing asset is a 404, never index.html cached for a year under its name."""
    folder = UI_DIST if (UI_DIST / "index.html").exists() else UI_PLACEHOLDER
    is_file = (folder / path).is_file()
    if path.startswith("assets/"):
        if not is_file:
            raise NotFound(f"no UI asset at /{path}")
        response = send_from_directory(folder, path)
        response.headers["Cache-Control"] = ASSETS_CACHE
        return response
    served = path if is_file else "index.html"
    response = send_from_directory(folder, served)
    if served == "index.html":
        response.headers["Cache-Control"] = "no-cache"
    return response


def _socket_allowed(rt: Runtime, credentials: Any) -> bool:
    token = credentials.get("token") if isinstance(credentials, dict) else None
    with db.transaction(rt.sessions) as s:
        if isinstance(token, str) and token:
            who = auth.key_principal(s, token)  # a site key is public: it watches nothing
            return who is not None and not access.is_site_key(who)
        user_id = session.get("user_id")
        return isinstance(user_id, int) and auth.user_principal(s, user_id) is not None
