"""The door: every request is checked here before it reaches a view.

Programs send `Authorization: Bearer <API key>`; people log in through the web UI and
carry a signed session cookie. A cookie is sent by the browser on its own, so every
change made with one must also carry the session's CSRF token (`X-CSRF-Token` header, or
a `csrf_token` form field) that only our own pages can read. Viewers read; marketers and
admins change; only admins manage users and keys.

A fourth kind of API key, `site`, is for web pages: it sits in the page's HTML where anyone
can read it, so it may call only the views marked `@site` (fetching a customer's next popup,
engine/web/api/popups.py) and is refused with 403 everywhere else, including the live
statistics socket. It is an API-key role only: no user logs in as a site.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from engine.core import db
from engine.core.config import Settings, secret_key
from engine.core.errors import Forbidden, NotFound, TooManyAttempts, Unauthorized
from engine.core.models import ApiKey, User
from engine.ops import auth, throttle
from engine.web import bodies
from engine.web.api import body, iso, runtime
from engine.web.declare import accepts, responds

bp = Blueprint("access", __name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: blueprints whose callers prove themselves another way (provider webhook signatures)
PUBLIC_BLUEPRINTS = {"webhooks"}
CSRF_HEADER = "X-CSRF-Token"
#: called by programs, not browsers: an anonymous call gets 401, never a login page
MACHINE_PATHS = ("/api/", "/metrics")
#: the role of a key published in web pages (see the module docstring)
SITE_ROLE = auth.SITE

View = TypeVar("View", bound=Callable[..., Any])


def _mark(view: View, flag: str) -> View:
    """Set `flag` on `view` (read back with getattr by the door below)."""
    setattr(view, flag, True)
    return view


def public(view: View) -> View:
    """Anyone may call this view (the login page, the API description)."""
    return _mark(view, "public")


def page(view: View) -> View:
    """An HTML page for browsers (the UI, the login form): part of the site, not of the API
    or its description."""
    return _mark(view, "page")


def read_only(view: View) -> View:
    """A POST that changes nothing (a validation, a preview): viewers may call it."""
    return _mark(view, "read_only")


def admin_only(view: View) -> View:
    return _mark(view, "admin_only")


def site(view: View) -> View:
    """A `site` key may call this view (web pages call it from other origins, so its CORS
    preflight, which never carries credentials, is let through to Flask's OPTIONS answer)."""
    return _mark(view, "site")


def is_site_key(who: auth.Principal | None) -> bool:
    """Whether `who` is a site key, which only `@site` views (and no socket) accept."""
    return who is not None and who.role == SITE_ROLE


def install(app: Flask, settings: Settings) -> None:
    """Give the app its session secret and cookie rules, the guard, and the access views."""
    app.secret_key = secret_key(settings)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=os.environ.get("CC_SECURE_COOKIES", "") in ("1", "true"))
    app.before_request(_guard)
    app.register_blueprint(bp)


def principal() -> auth.Principal:
    """Who is making the current request (set by the guard)."""
    return g.principal


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _guard() -> Any:
    view = current_app.view_functions.get(request.endpoint or "")
    settings = runtime().settings
    if view is None or getattr(view, "public", False) or request.blueprint in PUBLIC_BLUEPRINTS:
        bodies.admit(settings, view, known=False, webhook=request.blueprint in PUBLIC_BLUEPRINTS)
        return None
    if request.method == "OPTIONS" and getattr(view, "site", False):
        return None
    who = _authenticate()
    bodies.admit(settings, view, known=who is not None and not is_site_key(who))
    if who is None:
        if request.path.startswith(MACHINE_PATHS) or request.method not in SAFE_METHODS:
            raise Unauthorized("log in, or send an API key as 'Authorization: Bearer <key>'")
        return redirect(url_for("access.login_page", next=request.full_path.rstrip("?")))
    g.principal = who
    if is_site_key(who) and not getattr(view, "site", False):
        raise Forbidden(f"{who.name} is a site key: it may only fetch popups (GET /api/popups/next)")
    if getattr(view, "admin_only", False) and who.role != "admin":
        raise Forbidden(f"only admins may do this; {who.name} is {who.role}")
    if request.method in SAFE_METHODS or getattr(view, "read_only", False):
        return None
    if who.kind == "user":
        _check_csrf()
    if not who.may_change():
        raise Forbidden(f"{who.name} is a viewer and may not change anything")
    return None


def _authenticate() -> auth.Principal | None:
    header = request.headers.get("Authorization", "")
    with db.transaction(runtime().sessions) as s:
        if header:
            scheme, _, key = header.partition(" ")
            found = auth.key_principal(s, key.strip()) if scheme.lower() == "bearer" and key.strip() else None
            if found is None:  # a bad key never falls back to a cookie
                raise Unauthorized("the API key is unknown or revoked")
            return found
        user_id = session.get("user_id")
        return auth.user_principal(s, user_id) if isinstance(user_id, int) else None


def _check_csrf() -> None:
    sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not secrets.compare_digest(str(sent), expected):
        raise Forbidden(f"missing or wrong CSRF token: send the {CSRF_HEADER} header from /api/auth/me")


# --------------------------------------------------------------------------- browser login


@bp.get("/login")
@public
@page
def login_page() -> ResponseReturnValue:
    return render_template("login.html", csrf_token=csrf_token(), next=_safe_next(), error=None)


@bp.post("/login")
@public
@page
def login_form() -> ResponseReturnValue:
    try:
        _check_csrf()
        _sign_in(request.form.get("username"), request.form.get("password"))
    except (Unauthorized, Forbidden, TooManyAttempts) as exc:
        page = render_template("login.html", csrf_token=csrf_token(), next=_safe_next(), error=exc.message)
        return page, exc.status, exc.headers()
    return redirect(_safe_next())


@bp.post("/logout")
@page
def logout_form() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("access.login_page"))


def _sign_in(username: object, password: object) -> User:
    """The user these credentials belong to, now signed in; failed attempts are counted
    (engine/ops/throttle.py) and refused with TooManyAttempts past their limit."""
    rt = runtime()
    attempt = throttle.Attempt(username, request.remote_addr or "unknown")
    counts = throttle.LoginThrottle(rt.redis, rt.settings.queue_name)
    counts.begin(attempt)
    with db.transaction(rt.sessions) as s:
        user = auth.login(s, username, password)
        _start_session(user)
    counts.succeeded(attempt)
    return user


def _start_session(user: User) -> None:
    session.clear()  # a fresh session (and CSRF token) at login: no fixation
    session["user_id"] = user.id
    csrf_token()


def _safe_next() -> str:
    """Where to go after login: a path on this site only (never an open redirect)."""
    target = request.values.get("next") or "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


# --------------------------------------------------------------------------- JSON login


@bp.post("/api/auth/login")
@public
@accepts("Login")
def api_login() -> ResponseReturnValue:
    data = body()
    user = _sign_in(data.get("username"), data.get("password"))
    return jsonify({"user": _user_json(user), "csrf_token": csrf_token()})


@bp.post("/api/auth/logout")
def api_logout() -> ResponseReturnValue:
    session.clear()
    return jsonify(ok=True)


@bp.get("/api/auth/me")
def me() -> ResponseReturnValue:
    who = principal()
    payload: dict[str, Any] = who.to_dict()
    if who.kind == "user":
        payload["csrf_token"] = csrf_token()
    return jsonify(payload)


# --------------------------------------------------------------------------- users and keys


@bp.get("/api/users")
@admin_only
def list_users() -> ResponseReturnValue:
    with runtime().sessions() as s:
        return jsonify(items=[_user_json(u) for u in s.scalars(select(User).order_by(User.id))])


@bp.post("/api/users")
@admin_only
@accepts("NewUser")
@responds(201)
def create_user() -> ResponseReturnValue:
    data = body()
    with db.transaction(runtime().sessions) as s:
        user = auth.create_user(s, data.get("username"), data.get("password"), data.get("role", "marketer"))
        payload = _user_json(user)
    return jsonify(payload)


@bp.patch("/api/users/<int:user_id>")
@admin_only
@accepts("UserChange")
def update_user(user_id: int) -> ResponseReturnValue:
    data = body()
    with db.transaction(runtime().sessions) as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        if "role" in data:
            user.role = auth.check_role(data["role"])
        if "password" in data:
            auth.set_password(user, data["password"])
        if "disabled" in data:
            user.disabled = data["disabled"]
        payload = _user_json(user)
    return jsonify(payload)


@bp.get("/api/api-keys")
@admin_only
def list_keys() -> ResponseReturnValue:
    with runtime().sessions() as s:
        return jsonify(items=[_key_json(k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id))])


@bp.post("/api/api-keys")
@admin_only
@accepts("NewApiKey")
@responds(201)
def create_key() -> ResponseReturnValue:
    data = body()
    who = principal()
    with db.transaction(runtime().sessions) as s:
        row, key = auth.create_api_key(s, data.get("name"), data.get("role", "marketer"),
                                       created_by=who.id if who.kind == "user" else None)
        payload = {**_key_json(row), "key": key}
    return jsonify(payload)


@bp.delete("/api/api-keys/<int:key_id>")
@admin_only
def revoke_key(key_id: int) -> ResponseReturnValue:
    with db.transaction(runtime().sessions) as s:
        payload = _key_json(auth.revoke_api_key(s, key_id))
    return jsonify(payload)


def _user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role, "disabled": user.disabled,
            "created_at": iso(user.created_at), "last_login_at": iso(user.last_login_at)}


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "role": key.role, "created_by": key.created_by,
            "created_at": iso(key.created_at), "last_used_at": iso(key.last_used_at),
            "revoked_at": iso(key.revoked_at), "revoked": key.revoked_at is not None}
