"""What engagement nodes need while they run: poll response counts per period and popup
report tokens. The polls and popups services (engine/engagement/) build on the same
functions; nodes reach them through engine.sdk.engagement.
"""

from __future__ import annotations

import secrets
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.clock import to_utc_naive
from engine.core.models import PollResponse

#: the periods a poll's response count can be taken over
PERIODS = ("total", "day", "week", "month")


def count_responses(session: Session, poll_id: int, since: datetime | None = None) -> int:
    """Completed responses of a poll (since a time, when given)."""
    query = select(func.count()).select_from(PollResponse).where(PollResponse.poll_id == poll_id)
    if since is not None:
        query = query.where(PollResponse.completed_at >= since)
    return session.scalar(query) or 0



def period_start(now: datetime, tz: ZoneInfo, per: str) -> datetime | None:
    """The start (naive UTC) of the day, ISO week (from Monday) or month that `now` (naive
    UTC) is in, in time zone `tz`; None for "total" (no period: since ever)."""
    if per == "total":
        return None
    day = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz).date()
    if per == "week":
        day -= timedelta(days=day.weekday())
    elif per == "month":
        day = day.replace(day=1)
    return to_utc_naive(datetime.combine(day, time(), tzinfo=tz))


def new_token() -> str:
    """An unguessable report token (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)
