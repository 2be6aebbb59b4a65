"""Segment membership: who matches a segment now, and since when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session


def profiles_changed(session: Session, profile_ids: list[int], now: datetime) -> int:
    """Re-evaluate the segments (and the "entered segment" triggers) for these customers,
    in the caller's transaction. Returns how many journeys it started."""
    return 0
