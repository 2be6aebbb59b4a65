"""Popups: made by the show-popup node, handed to the customer's web page, reported back.

The node (nodes/engagement.py) writes a Popup row per customer in the batch's transaction.
A page asks for "the popup for this action" when the action happens (a page view, an add
to cart) and gets at most one: the customer's oldest popup for that action that has not
expired and was never handed out. Handing it out and marking it shown is one statement
(`UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) AND shown_at IS NULL
RETURNING`), so two tabs asking at once never both get it: on PostgreSQL the second skips
the row the first holds, on SQLite the write lock orders them.

The page then reports a `view` (it was displayed) and a button `click`. Each sets its time
once and records one event (`popup.view`, `popup.click`) through engine/journeys/events.py, so
campaigns can be triggered, stopped or converted by them; a report repeated (a retry, a
second tab) changes nothing. Reports carry the popup's own `token` (random, 190 bits,
given only with the popup) instead of an API key: whoever holds it can only report on that
one popup, which is exactly what the page that showed it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.core import db
from engine.core.clock import iso
from engine.core.engagement import new_token  # noqa: F401  (kept importable here)
from engine.core.errors import InvalidInput, NotFound
from engine.core.models import Popup
from engine.journeys import events

#: report kinds: the time column they set once, and the event they record
REPORTS = {"view": ("viewed_at", "popup.view"), "click": ("clicked_at", "popup.click")}


def hand_out(session: Session, profile_id: int, action: str, now: datetime) -> Popup | None:
    """The popup to show `profile_id` now for `action`, marked shown so that it is never
    handed out again; None when there is none (expired popups never count)."""
    oldest = (select(Popup.id)
              .where(Popup.profile_id == profile_id, Popup.action == action, Popup.shown_at.is_(None),
                     Popup.expires_at > now)
              .order_by(Popup.created_at, Popup.id).limit(1)
              .with_for_update(skip_locked=True).scalar_subquery())
    claim = (update(Popup).where(Popup.id == oldest, Popup.shown_at.is_(None)).values(shown_at=now)
             .returning(Popup).execution_options(synchronize_session=False))
    return session.scalars(claim).one_or_none()


def report(session: Session, token: str, kind: str, button: str | None, now: datetime) -> dict[str, Any]:
    """Record a view or a click of the popup whose token this is, once. A click is also a
    view (a page that clicked showed it), so views never count fewer than clicks.
    Returns {"recorded": bool, "popup_id"}: False when it had been reported before."""
    popup = session.scalar(select(Popup).where(Popup.token == token))
    if popup is None:
        raise NotFound("no popup has this token (it is the one handed out with the popup)",
                       [{"pointer": "/token", "message": "unknown token"}])
    if kind == "click":
        _check_button(popup, button)
    elif button is not None:
        raise InvalidInput.field("/button", "is only sent with a click")
    viewed = _mark(session, popup, "view", now, None)
    clicked = kind == "click" and _mark(session, popup, "click", now, button)
    return {"recorded": clicked if kind == "click" else viewed, "popup_id": popup.id}


def _check_button(popup: Popup, button: str | None) -> None:
    ids: list[Any] = [b.get("id") for b in popup.buttons if isinstance(b, Mapping)]  # strings, checked when saved
    if button not in ids:
        raise InvalidInput.field("/button",
                                 f"must be the id of one of the popup's buttons ({', '.join(ids) or 'none'})")


def _mark(session: Session, popup: Popup, kind: str, now: datetime, button: str | None) -> bool:
    """Set the kind's time if unset and record its event; False when it was set already.
    The conditional UPDATE is the guard: of two concurrent reports, one updates the row."""
    column, name = REPORTS[kind]
    done = db.rowcount(session.execute(update(Popup).where(Popup.id == popup.id, getattr(Popup, column).is_(None))
                                      .values({column: now}).execution_options(synchronize_session=False)))
    if not done:
        return False
    properties: dict[str, Any] = {"popup_id": popup.id, "campaign_id": popup.campaign_id, "action": popup.action}
    if button is not None:
        properties["button_id"] = button
    events.record(session, [events.Occurrence(popup.profile_id, name, properties, now)])
    return True


def popup_json(popup: Popup) -> dict[str, Any]:
    """What a page needs to show a popup and report on it."""
    return {"id": popup.id, "campaign_id": popup.campaign_id, "action": popup.action, "title": popup.title,
            "body": popup.body, "image": popup.image, "buttons": popup.buttons, "token": popup.token,
            "expires_at": iso(popup.expires_at)}
