"""Customer profiles over HTTP (a first slice): one profile as the engine sees it, and the
in-app notifications its app reads and marks read."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine import clock, db
from engine.api import iso, runtime
from engine.errors import InvalidInput, NotFound
from engine.models import Notification, Profile

bp = Blueprint("profiles", __name__, url_prefix="/api/profiles")

PAGE_SIZE = 20
PAGE_MAX = 100


@bp.get("/<int:profile_id>")
def get_profile(profile_id: int):  # type: ignore[no-untyped-def]
    with runtime().sessions() as session:
        return jsonify(_profile_json(_profile(session, profile_id)))


@bp.get("/<int:profile_id>/notifications")
def list_notifications(profile_id: int):  # type: ignore[no-untyped-def]
    """Newest first. Page on with `before` = the `next_before` of the previous page (keyset
    paging: a notification arriving meanwhile neither repeats nor hides one)."""
    limit, unread = _limit_arg(), _flag_arg("unread")
    with runtime().sessions() as session:
        _profile(session, profile_id)
        query = select(Notification).where(Notification.profile_id == profile_id)
        if unread:
            query = query.where(Notification.read_at.is_(None))
        if (before := _int_arg("before")) is not None:
            query = query.where(_older_than(_notification(session, profile_id, before, "before")))
        rows = list(session.scalars(query.order_by(Notification.created_at.desc(), Notification.id.desc())
                                    .limit(limit + 1)))
        page = rows[:limit]
        return jsonify(items=[_notification_json(n) for n in page],
                       next_before=page[-1].id if len(rows) > limit else None,
                       unread_count=_unread_count(session, profile_id))


@bp.post("/<int:profile_id>/notifications/<int:notification_id>/read")
def mark_read(profile_id: int, notification_id: int):  # type: ignore[no-untyped-def]
    """Idempotent: reading again keeps the first read time."""
    with db.transaction(runtime().sessions) as session:
        _profile(session, profile_id)
        notification = _notification(session, profile_id, notification_id)
        if notification.read_at is None:
            notification.read_at = clock.now()
        payload = _notification_json(notification)
    return jsonify(payload)


# --------------------------------------------------------------------------- helpers


def _profile(session: Session, profile_id: int) -> Profile:
    profile = session.get(Profile, profile_id)
    if profile is None:
        raise NotFound(f"profile {profile_id} does not exist")
    return profile


def _notification(session: Session, profile_id: int, notification_id: int, arg: str | None = None) -> Notification:
    """The profile's notification; another profile's counts as missing (never shown across)."""
    notification = session.get(Notification, notification_id)
    if notification is None or notification.profile_id != profile_id:
        if arg is not None:
            raise InvalidInput(f"{arg} must be the id of one of this profile's notifications",
                               [{"pointer": arg, "message": f"no notification {notification_id} for this profile"}])
        raise NotFound(f"profile {profile_id} has no notification {notification_id}")
    return notification


def _older_than(anchor: Notification) -> Any:
    """Rows after `anchor` in (created_at desc, id desc) order."""
    return or_(Notification.created_at < anchor.created_at,
               (Notification.created_at == anchor.created_at) & (Notification.id < anchor.id))


def _unread_count(session: Session, profile_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Notification).where(
        Notification.profile_id == profile_id, Notification.read_at.is_(None))) or 0


def _limit_arg() -> int:
    """`limit`, PAGE_SIZE by default, at most PAGE_MAX (more is clamped, not refused)."""
    limit = _int_arg("limit")
    if limit is None:
        return PAGE_SIZE
    if limit < 1:
        raise InvalidInput("limit must be at least 1", [{"pointer": "limit", "message": "must be at least 1"}])
    return min(limit, PAGE_MAX)


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number",
                           [{"pointer": name, "message": f"must be a whole number (got '{raw}')"}]) from None


def _flag_arg(name: str) -> bool:
    raw = request.args.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise InvalidInput(f"{name} must be 1 or 0", [{"pointer": name, "message": f"must be 1 or 0 (got '{raw}')"}])


def _profile_json(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id, "external_id": profile.external_id, "email": profile.email, "phone": profile.phone,
        "push_tokens": profile.push_tokens, "timezone": profile.timezone, "attributes": profile.attributes,
        "points": profile.points,
        "email_opt_out": profile.email_opt_out, "email_bounced_at": iso(profile.email_bounced_at),
        "sms_opt_out": profile.sms_opt_out, "push_opt_out": profile.push_opt_out,
        "created_at": iso(profile.created_at), "updated_at": iso(profile.updated_at),
    }


def _notification_json(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id, "campaign_id": notification.campaign_id, "title": notification.title,
        "body": notification.body, "data": notification.data, "category": notification.category,
        "created_at": iso(notification.created_at), "read_at": iso(notification.read_at),
        "read": notification.read_at is not None,
    }
