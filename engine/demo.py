"""Demo data: customers, segments, an audience and the example campaigns, some of them live.

Idempotent: a second run finds the demo campaigns and changes nothing.
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from engine import campaigns, clock, db
from engine.events import record_event
from engine.generate import profiles
from engine.models import Audience, Campaign, Profile, Segment
from engine.runtime import Runtime

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_CAMPAIGNS = ("welcome_series.json", "ab_winback.json")


def seed(rt: Runtime, *, profiles_count: int = 2000) -> dict[str, Any]:
    count = profiles_count
    now = clock.now()
    with db.transaction(rt.sessions) as session:
        if session.scalar(select(func.count()).select_from(Campaign).where(Campaign.name == "Welcome series")):
            return {"seeded": False, "reason": "demo data is already there"}
        first = session.scalar(select(func.count()).select_from(Profile)) or 0
        generated = profiles(count, start=first)
        while rows := list(islice(generated, 1000)):
            session.execute(insert(Profile), [{**r, "created_at": now, "updated_at": now} for r in rows])
        session.add_all([
            Segment(name="VIP customers", rules={"match": "all", "rules": [
                {"field": "attributes.vip", "op": "eq", "value": True}]}),
            Segment(name="Paris", rules={"match": "all", "rules": [
                {"field": "attributes.city", "op": "eq", "value": "Paris"}]}),
        ])
        audience = Audience(name="Onboarding", description="Filled by the demo campaigns")
        session.add(audience)
        session.flush()
        created = {}
        for name in DEMO_CAMPAIGNS:
            document = _with_audience(json.loads((EXAMPLES / name).read_text()), audience.id)
            campaign = campaigns.create(session, document)
            created[name] = campaign.id
            campaigns.launch(session, campaign.id, now)
    with db.transaction(rt.sessions) as session:  # a few sign-ups for the event-triggered campaign
        ids = session.scalars(select(Profile.id).order_by(Profile.id.desc()).limit(25)).all()
        for pid in ids:
            record_event(session, pid, "signup", {"source": "demo"}, now)
    return {"seeded": True, "profiles": count, "campaigns": created, "signups": len(ids)}


def _with_audience(document: dict[str, Any], audience_id: int) -> dict[str, Any]:
    for node in document["nodes"]:
        if "audience_id" in node.get("settings", {}):
            node["settings"]["audience_id"] = audience_id
    return document
