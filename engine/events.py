"""Recording what customers do, and starting the journeys their events trigger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.entry import enroll_profiles
from engine.graph import entry_node
from engine.models import Campaign, CampaignVersion, Event
from engine.registry import NodeType


def record_event(session: Session, profile_id: int, name: str, properties: dict[str, Any],
                 occurred_at: datetime) -> int:
    """Store the event and enroll the customer in every active campaign it triggers.
    Returns how many journeys it started."""
    session.add(Event(profile_id=profile_id, name=name, properties=properties, occurred_at=occurred_at))
    started = 0
    for campaign_id, version_id, trigger in _event_campaigns(session, name):
        admitted = trigger.admit(session, campaign_id, [profile_id], occurred_at)
        started += enroll_profiles(session, campaign_id, version_id, trigger.id, admitted, occurred_at,
                                   context={"event": name, "properties": properties})
    return started


def _event_campaigns(session: Session, name: str) -> list[tuple[int, int, NodeType]]:
    rows = session.execute(
        select(Campaign.id, CampaignVersion.id, CampaignVersion.document)
        .join(CampaignVersion, CampaignVersion.id == Campaign.version_id)
        .where(Campaign.status == "active")
    )
    found = []
    for campaign_id, version_id, document in rows:
        entry = next((n for n in document["nodes"] if n["type"] == "event_trigger"), None)
        if entry is not None and entry.get("settings", {}).get("event") == name:
            found.append((campaign_id, version_id, entry_node(document)))
    return found
