"""Customer profiles over HTTP: list and search them, create or update them in bulk, change
or delete one, import files of them; and the in-app notifications a profile's app reads.

Every write goes through `engine.journeys.profiles` (validated in full before anything is written)
and tells `engine.journeys.segments.profiles_changed` in the same transaction, so "entered the
segment" triggers see the change."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from engine.core import clock, db
from engine.core.errors import InvalidInput, NotFound
from engine.core.models import ImportJob, JourneyStep, Notification, Profile
from engine.journeys import imports
from engine.journeys import profiles as store
from engine.journeys.segments import profiles_changed
from engine.web import bodies
from engine.web.api import body, iso, runtime
from engine.web.declare import accepts, args, query, responds
from engine.web.paging import limit_arg, page_args

bp = Blueprint("profiles", __name__, url_prefix="/api/profiles")
imports_bp = Blueprint("imports", __name__, url_prefix="/api/imports")

PAGE_SIZE = 20
PAGE_MAX = 100
#: import job ids are 32-bit: a larger number is no job (and no query)
JOB_ID_MAX = 2**31 - 1


@bp.get("")
@query("ProfileSearch")
def list_profiles() -> ResponseReturnValue:
    """Ordered by id; `q` keeps the profiles whose external_id, email or phone starts with
    it (emails compare case-insensitively, as they are stored lowercased)."""
    limit, offset = page_args()
    query = select(Profile)
    if q := args().get("q", "").strip():
        query = query.where(_starts_with(q))
    with runtime().sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Profile.id).limit(limit).offset(offset))
        return jsonify(items=[profile_json(p) for p in rows], total=total, limit=limit, offset=offset)


@bp.post("")
@accepts("ProfileUpsert", refuse=store.refuse)
def upsert_profiles() -> ResponseReturnValue:
    """`{"profiles": [...]}`: each item is matched by its identifiers (see
    `engine.journeys.profiles.Upsert`) and creates or updates one profile; all or nothing."""
    items = body()["profiles"]
    with db.transaction(runtime().sessions) as session:
        now = clock.now()
        ids, created = store.upsert_profiles(session, items, now)
        profiles_changed(session, sorted(set(ids)), now)
    return jsonify(created=created, updated=len(ids) - created, ids=ids)


@bp.patch("/<bigid:profile_id>")
@accepts("ProfileChange", refuse=store.refuse)
def update_profile(profile_id: int) -> ResponseReturnValue:
    """Fields left out keep their values; null clears an identifier or the time zone;
    attributes merge (a null attribute is removed)."""
    data = body()
    with db.transaction(runtime().sessions) as session:
        now = clock.now()
        store.patch_profile(session, profile_id, data, now)
        profiles_changed(session, [profile_id], now)
        payload = profile_json(_profile(session, profile_id))
    return jsonify(payload)


@bp.delete("/<bigid:profile_id>")
def delete_profile(profile_id: int) -> ResponseReturnValue:
    """Deletes the profile with its journeys, events, messages, memberships and steps."""
    with db.transaction(runtime().sessions) as session:
        if not db.rowcount(session.execute(delete(Profile).where(Profile.id == profile_id))):
            raise NotFound(f"profile {profile_id} does not exist")
        session.execute(delete(JourneyStep).where(JourneyStep.profile_id == profile_id))  # no cascade there
    return jsonify(deleted=profile_id)


@bp.post("/import")
@bodies.file_upload
@accepts("ImportFile", media_type="multipart/form-data", checked=False)
@query("ImportOptions")
@responds(201, 202)
def import_profiles() -> ResponseReturnValue:
    """A CSV or JSON file (format: engine/journeys/imports.py) as the multipart field `file`, or as
    the body (text/csv, application/x-ndjson). Files under imports.SYNC_ROWS rows are
    imported before the answer (201, the finished job); larger ones in a thread of this
    process (202, the running job: follow it at /api/imports/<id>)."""
    filename, source = _upload()
    sessions = runtime().sessions
    try:
        estimate = imports.estimate_rows(source.path, source.fmt)
        job_id = imports.create_job(sessions, filename, estimate)
    except BaseException:
        source.close()
        raise
    if estimate < imports.SYNC_ROWS:
        with source:
            return jsonify(imports.run(sessions, job_id, source))
    imports.start(sessions, job_id, source)  # the thread closes the source
    return jsonify(_job(job_id)), 202, {"Location": f"/api/imports/{job_id}"}


@imports_bp.get("")
@query("Page")
def list_imports() -> ResponseReturnValue:
    """Newest first, without the refused rows (GET one job for those)."""
    limit, offset = page_args()
    with runtime().sessions() as session:
        total = session.scalar(select(func.count()).select_from(ImportJob)) or 0
        rows = session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit).offset(offset))
        return jsonify(items=[imports.job_json(j, rejected=False) for j in rows], total=total, limit=limit,
                       offset=offset)


@imports_bp.get("/<int:import_id>")
def get_import(import_id: int) -> ResponseReturnValue:
    return jsonify(_job(import_id))


@bp.get("/<bigid:profile_id>")
def get_profile(profile_id: int) -> ResponseReturnValue:
    with runtime().sessions() as session:
        return jsonify(profile_json(_profile(session, profile_id)))


@bp.get("/<bigid:profile_id>/notifications")
@query("NotificationPage")
def list_notifications(profile_id: int) -> ResponseReturnValue:
    """Newest first. Page on with `before` = the `next_before` of the previous page (keyset
    paging: a notification arriving meanwhile neither repeats nor hides one)."""
    limit, unread = limit_arg(PAGE_SIZE, PAGE_MAX), args()["unread"]
    with runtime().sessions() as session:
        _profile(session, profile_id)
        query = select(Notification).where(Notification.profile_id == profile_id)
        if unread:
            query = query.where(Notification.read_at.is_(None))
        if (before := args().get("before")) is not None:
            query = query.where(_older_than(_notification(session, profile_id, before, "before")))
        rows = list(session.scalars(query.order_by(Notification.created_at.desc(), Notification.id.desc())
                                    .limit(limit + 1)))
        page = rows[:limit]
        return jsonify(items=[_notification_json(n) for n in page],
                       next_before=page[-1].id if len(rows) > limit else None,
                       unread_count=_unread_count(session, profile_id))


@bp.post("/<bigid:profile_id>/notifications/<bigid:notification_id>/read")
def mark_read(profile_id: int, notification_id: int) -> ResponseReturnValue:
    """Idempotent: reading again keeps the first read time."""
    with db.transaction(runtime().sessions) as session:
        _profile(session, profile_id)
        notification = _notification(session, profile_id, notification_id)
        if notification.read_at is None:
            notification.read_at = clock.now()
        payload = _notification_json(notification)
    return jsonify(payload)


# --------------------------------------------------------------------------- helpers


def _starts_with(q: str) -> Any:
    """Prefix match by substring comparison: the same, case-sensitive, result on both
    databases (SQLite's LIKE ignores ASCII case)."""
    def prefix(column: Any, text: str) -> Any:
        return func.substr(column, 1, len(text)) == text

    return or_(prefix(Profile.external_id, q), prefix(Profile.email, q.lower()), prefix(Profile.phone, q))


def _upload() -> tuple[str, imports.Source]:
    """The uploaded file, spooled to disk: (its name, its records)."""
    explicit = args().get("format")
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise InvalidInput.field("file", "is missing: send the file as the multipart field 'file'")
        filename = upload.filename or "upload"
        fmt = imports.format_of(upload.filename, upload.mimetype, explicit)
        path = imports.spool(upload.stream)
    else:
        filename = args().get("filename") or "request body"
        fmt = imports.format_of(None, request.mimetype, explicit)
        path = imports.spool(request.stream)
    if path.stat().st_size == 0:
        path.unlink()
        raise InvalidInput.field("file", "is empty")
    return filename, imports.Source(path, fmt, temporary=True)


def _job(job_id: int) -> dict[str, Any]:
    with runtime().sessions() as session:
        job = session.get(ImportJob, job_id) if job_id <= JOB_ID_MAX else None
        if job is None:
            raise NotFound(f"import {job_id} does not exist")
        return imports.job_json(job)


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


def profile_json(profile: Profile) -> dict[str, Any]:
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
