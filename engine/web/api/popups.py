"""Popups for web pages: the embeddable script, "the popup for this action", and reports.

A web page cannot hold an admin (or any) secret: whatever it sends, anyone can read in its
HTML. So the page's access is as narrow as two things:

- a `site` API key (`POST /api/api-keys {"role": "site"}`), published in the page, which
  may call only the popup fetch below; every other endpoint (and the live statistics
  socket) refuses it with 403 (engine/web/access.py). Whoever copies it can at most take
  a customer's pending popup, given that customer's id: what the site's visitors do anyway.
- the popup's own `token` for reports: random, handed out only with the popup, good for
  reporting a view or a click of that one popup and nothing else. Reports need no key.

Both endpoints answer cross-origin requests (CORS, with `*`: they are authorized by the
bearer key or the token, never by cookies), since the script runs on the customer's site.
No other endpoint does. The script itself is served at a stable URL, /embed/popup.js.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from engine.core import clock, db
from engine.core.errors import InvalidInput
from engine.core.models import Popup, Profile
from engine.engagement import popups
from engine.web.access import public, site
from engine.web.api import body, runtime
from engine.web.declare import accepts, args, query, responds

bp = Blueprint("popups", __name__)

EMBED_SCRIPT = Path(__file__).resolve().parents[3] / "canvas_ui" / "embed" / "popup.js"
#: browsers may reuse the script this long; its URL is stable, so changes reach pages within it
EMBED_CACHE = "public, max-age=300"
#: endpoints that answer other origins, and the preflight's answers
CORS_ENDPOINTS = {"popups.profile_popup", "popups.next_popup", "popups.report_popup"}
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


@bp.get("/api/profiles/<bigid:profile_id>/popups")
@site
@query("PopupAction")
def profile_popup(profile_id: int) -> ResponseReturnValue:
    """The popup to show this customer now for `action`, handed out once: `{"popup": {...}}`
    or `{"popup": null}` (also for an unknown customer: a page learns nothing from it)."""
    action = args()["action"].strip()
    return jsonify(popup=_hand_out(profile_id, action))


@bp.get("/api/popups/next")
@site
@query("NextPopup")
def next_popup() -> ResponseReturnValue:
    """The same, the customer named by `profile_id` or `external_id` (the site's own id)."""
    action = args()["action"].strip()
    profile_id, external_id = args().get("profile_id"), args().get("external_id")
    if (profile_id is None) == (not external_id):
        raise InvalidInput.field("profile_id", "or external_id must name the customer (one of them)")
    if profile_id is None:
        with runtime().sessions() as session:
            profile_id = session.scalar(select(Profile.id).where(Profile.external_id == str(external_id).strip()))
        if profile_id is None:
            return jsonify(popup=None)
    return jsonify(popup=_hand_out(profile_id, action))


@bp.post("/api/popups/report")
@public
@accepts("PopupReport")
def report_popup() -> ResponseReturnValue:
    """`{"token": ..., "event": "view" | "click", "button": id (clicks)}`: records the
    view or click once, as a `popup.view` / `popup.click` event; a repeat changes nothing
    (`recorded: false`). The token (not a key) says which popup, and is all the proof asked."""
    data = body()
    token, kind, button = data["token"], data["event"], data.get("button")
    with db.transaction(runtime().sessions) as session:
        outcome = popups.report(session, token, kind, button, clock.now())
    return jsonify(outcome)


@bp.get("/embed/popup.js")
@public
@responds(200, media_type="text/javascript")
def embed_script() -> Response:
    """The script pages include (canvas_ui/embed/popup.js)."""
    response = send_file(EMBED_SCRIPT, mimetype="text/javascript", max_age=300)
    response.headers["Cache-Control"] = EMBED_CACHE
    return response


@bp.after_request
def allow_other_origins(response: Response) -> Response:
    """CORS on the page-facing endpoints only (errors included, so the script can read them)."""
    if request.endpoint in CORS_ENDPOINTS:
        response.headers.update(CORS_HEADERS)
    return response


def _hand_out(profile_id: int, action: str) -> dict[str, Any] | None:
    with db.transaction(runtime().sessions) as session:
        popup: Popup | None = popups.hand_out(session, profile_id, action, clock.now())
        return popups.popup_json(popup) if popup is not None else None
