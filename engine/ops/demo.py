"""Demo data: customers, segments, an audience and the example campaigns, some of them live.

Idempotent: a second run finds the demo campaigns and changes nothing.
"""

from __future__ import annotations

import json
import os
import secrets
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from engine.core import clock, db
from engine.core.errors import Unauthorized
from engine.core.models import Audience, Campaign, JourneyStep, Profile, Segment, User
from engine.journeys import campaigns
from engine.journeys.events import Occurrence, record, record_event
from engine.journeys.generate import profiles
from engine.ops import auth
from engine.ops.runtime import Runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_CAMPAIGNS = ("welcome_series.json", "ab_winback.json")


CREDENTIALS_FILE = "demo-credentials.json"


def seed(rt: Runtime, *, profiles_count: int = 2000) -> dict[str, Any]:
    count = profiles_count
    now = clock.now()
    login = demo_login(rt)
    with db.transaction(rt.sessions) as session:
        if session.scalar(select(func.count()).select_from(Campaign).where(Campaign.name == "Welcome series")):
            return {"seeded": False, "reason": "demo data is already there", "login": login}
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
    purchases = _purchases(rt, created["ab_winback.json"])
    return {"seeded": True, "profiles": count, "campaigns": created, "signups": len(ids), "purchases": purchases,
            "login": login}


#: one customer in N buys after the win-back split, per path: the offers beat the hold-out,
#: and double points beat 20% off (so the report has an uplift and an A/B leader to show)
PURCHASE_EVERY = {("holdout", "control"): 12, ("offer", "discount"): 8, ("offer", "points"): 5}


def _purchases(rt: Runtime, campaign_id: int) -> int:
    """Run the win-back campaign's first steps now (the worker would, a moment later) and
    record purchases for a share of each path, so a new user's report has conversions."""
    with rt.sessions() as session:
        version_id = session.get_one(Campaign, campaign_id).version_id
    assert version_id is not None  # the demo campaign was just saved
    rt.executor.run(version_id, "all")
    with db.transaction(rt.sessions) as session:
        buyers: list[int] = []
        for (node_id, port), every in PURCHASE_EVERY.items():
            path = session.scalars(select(JourneyStep.profile_id).where(
                JourneyStep.campaign_id == campaign_id, JourneyStep.node_id == node_id, JourneyStep.port == port)
                .order_by(JourneyStep.id)).all()
            buyers += path[::every]
        bought = clock.now()  # after the split (on a real clock, later than the seed's start)
        record(session, [Occurrence(pid, "purchase", {"source": "demo", "amount": 49}, bought) for pid in buyers])
    return len(buyers)


def demo_login(rt: Runtime) -> dict[str, str] | None:
    """An `admin` user with a random password when the database has no user yet; the
    credentials are kept (readable by this account only) in the instance folder so that
    `serve` can print them on start. None when users exist that the demo did not create."""
    path = rt.settings.instance_dir / CREDENTIALS_FILE
    with db.transaction(rt.sessions) as session:
        if session.scalar(select(func.count()).select_from(User)):
            return json.loads(path.read_text()) if path.exists() else None
        password = secrets.token_urlsafe(12)
        auth.create_user(session, "admin", password, "admin")
        login = {"username": "admin", "password": password}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(login, handle)
    return login


def saved_login(rt: Runtime) -> dict[str, str] | None:
    """The demo credentials, while they still log in (not once the password was changed)."""
    path = rt.settings.instance_dir / CREDENTIALS_FILE
    if not path.exists():
        return None
    login = json.loads(path.read_text())
    with db.transaction(rt.sessions) as session:
        try:
            auth.login(session, login["username"], login["password"])
        except Unauthorized:
            return None
    return login


def _with_audience(document: dict[str, Any], audience_id: int) -> dict[str, Any]:
    for node in document["nodes"]:
        if "audience_id" in node.get("settings", {}):
            node["settings"]["audience_id"] = audience_id
    return document
