"""Campaign lifecycle: documents in, versions out, journeys started and stopped.

Every function here works inside the caller's transaction, so a failure (an invalid
document, a missing segment) leaves nothing half-written.

A stored document names the version of every node's type (`version`): a node saved without
one gets the newest, so what a campaign runs never depends on what is installed later.
`upgrade_nodes` is the one way a saved node moves to a newer version: the type's migrations
rewrite its settings and the result is a new campaign version, like any edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete as delete_rows
from sqlalchemy import exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from engine.core import clock, db, node_failures, registry, wakeups
from engine.core.entry import enroll_select
from engine.core.errors import DocumentInvalid, InvalidInput, InvalidState, NotFound
from engine.core.graph import entry_node, node_class, with_defaults
from engine.core.models import (
    ACTIVE,
    Campaign,
    CampaignEvent,
    CampaignTag,
    CampaignVersion,
    Enrollment,
    JourneyStep,
    ProviderConfig,
)
from engine.core.problems import ERROR
from engine.core.validation import ensure_valid, errors, validate_document
from engine.journeys import schedule, segments
from engine.messaging import providers

#: the only status whose campaign may be stored with errors: nothing runs it, and launching
#: it checks again
DRAFT = "draft"


def create(session: Session, document: Mapping[str, Any], *, draft: bool = False) -> Campaign:
    """A new draft campaign whose version 1 is `document`. Validated first: refused with
    every error, or, with `draft`, stored with its problems (a half-built campaign the
    marketer finishes later; launching it checks again)."""
    document = with_node_versions(document)
    problems = checked(session, document, keep_errors=draft)
    campaign = Campaign(status=DRAFT)
    session.add(campaign)
    _describe(session, campaign, document, problems)
    _new_version(session, campaign, document, problems)
    return campaign


def save(session: Session, campaign_id: int, document: Mapping[str, Any], now: datetime | None = None,
         *, draft: bool = False) -> CampaignVersion:
    """Store an edited document as a new version; customers in flight stay on theirs, and
    a campaign that runs by itself follows the new timing. `draft` keeps a document with
    errors, but only for a campaign still in draft: anything that runs, or may run again,
    takes only a valid one.

    The campaign row is locked first (FOR UPDATE; SQLite's writes take turns), so two tabs
    saving at once store two whole versions one after the other, never a mix."""
    campaign = get(session, campaign_id, lock=True)
    document = with_node_versions(document)
    problems = checked(session, document, keep_errors=draft and campaign.status == DRAFT)
    current = session.get_one(CampaignVersion, campaign.version_id)
    if current is not None and current.document == dict(document):
        return current
    _describe(session, campaign, document, problems)
    version = _new_version(session, campaign, document, problems)
    schedule.reschedule(session, campaign, document, now or clock.now())
    return version


def checked(session: Session, document: Mapping[str, Any], *, keep_errors: bool) -> list[dict[str, Any]]:
    """Every problem of `document` (errors and warnings, as stored with its version).
    Errors refuse it (DocumentInvalid, 422, naming each) unless `keep_errors`.

    Why the provider targets only once the rest is clean: they read the database by ids the
    document gives, which only a valid document guarantees are sane; a draft meets them at
    its last save or at launch."""
    problems = validate_document(document)
    if not errors(problems):
        problems += providers.target_problems(session, document)
    found = errors(problems)
    if found and not keep_errors:
        noun = "problem" if len(found) == 1 else "problems"
        raise DocumentInvalid(f"campaign document is invalid: {len(found)} {noun}",
                              details=[p.to_dict() for p in found])
    return [p.to_dict() for p in problems]


def stored_problems(version: CampaignVersion) -> list[dict[str, Any]]:
    """The problems kept with a version; for a version saved before they were kept (always
    a valid one), its warnings found now."""
    if version.problems is not None:
        return list(version.problems)
    return [p.to_dict() for p in validate_document(version.document)]


def with_node_versions(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document with the newest version of its type written into every node that names
    none (other nodes, and anything malformed for validation to report, left as they are).

    Why at save time: the stored document then says which declaration each node was built
    against, and a version registered later changes nothing about it."""
    nodes = document.get("nodes") if isinstance(document, Mapping) else None
    if not isinstance(nodes, list) or not any(_unversioned(node) for node in nodes):
        return document
    return {**document, "nodes": [_pinned(node) for node in nodes]}


def _pinned(node: Any) -> Any:
    newest = registry.get(node["type"]) if _unversioned(node) else None
    return node if newest is None else {**node, "version": newest.version}


def _unversioned(node: object) -> bool:
    """A node of a known type that names no version."""
    return (isinstance(node, Mapping) and "version" not in node and isinstance(node.get("type"), str)
            and registry.get(node["type"]) is not None)


def _describe(session: Session, campaign: Campaign, document: Mapping[str, Any],
              problems: list[dict[str, Any]]) -> None:
    """The campaign row mirrors the newest document's name, description and tags (for lists),
    and its tag and event rows are rewritten for the lookups that filter and ingest by them.
    A draft with errors links no events: its triggers and goal may be half-typed, and
    nothing ingests for a draft (launching needs a valid version, which links them)."""
    campaign.name = document["name"] or "Untitled campaign"
    campaign.description = document.get("description", "")
    campaign.tags = list(dict.fromkeys(document.get("tags", [])))
    session.flush()
    session.execute(delete_rows(CampaignTag).where(CampaignTag.campaign_id == campaign.id))
    session.execute(delete_rows(CampaignEvent).where(CampaignEvent.campaign_id == campaign.id))
    if campaign.tags:
        session.execute(insert(CampaignTag), [{"campaign_id": campaign.id, "tag": t} for t in campaign.tags])
    if not any(p["severity"] == ERROR for p in problems) and (links := event_links(document)):
        session.execute(insert(CampaignEvent), [{"campaign_id": campaign.id, "role": r, "event": e} for r, e in links])


def event_links(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(role, event) pairs: `start` for an event trigger, `stop` for each stop event, `goal`."""
    links = {("start", cls.starts_on(n.get("settings", {}))) for n in document["nodes"]
             if registry.has(cls := node_class(n), "event_entry") and cls is not None}
    links |= {("stop", name) for name in document.get("stop_events", [])}
    links.add(("goal", (document.get("goal") or {}).get("event")))
    return {(role, name) for role, name in links if name}


def _new_version(session: Session, campaign: Campaign, document: Mapping[str, Any],
                 problems: list[dict[str, Any]]) -> CampaignVersion:
    number = (session.scalar(select(func.max(CampaignVersion.number)).where(
        CampaignVersion.campaign_id == campaign.id)) or 0) + 1
    version = CampaignVersion(campaign_id=campaign.id, number=number, document=dict(document), problems=problems)
    session.add(version)
    session.flush()
    campaign.version_id = version.id
    return version


def get(session: Session, campaign_id: int, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    campaign = session.scalars(query.with_for_update() if lock else query).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def launch(session: Session, campaign_id: int, now: datetime) -> int:
    """Activate the campaign and enroll its launch audience; returns how many entered."""
    campaign = get(session, campaign_id, lock=True)
    if campaign.status not in ("draft", "scheduled"):
        raise InvalidState(f"campaign {campaign_id} is {campaign.status}; only a draft or scheduled "
                           "campaign can be launched (resume a paused one)")
    version = session.get_one(CampaignVersion, campaign.version_id)
    _ensure_launchable(session, campaign_id, version.document)
    entry = entry_node(version.document)
    campaign.status, campaign.launched_at, campaign.status_reason = "active", now, ""
    campaign.next_run_at = None
    if schedule.is_scheduled(entry):  # a send at a set time, a recurring schedule
        return schedule.start(session, campaign, version.document, entry, now)
    entered = segments.launched(session, campaign, version.document, entry, now)
    audience = entry.launch_audience(session, now)
    if audience is not None:
        entered += enroll_select(session, campaign.id, version.id, entry.id, audience, now)
    return entered


def pause(session: Session, campaign_id: int) -> None:
    """Hold every customer where they are; due steps wait until resume."""
    campaign = get(session, campaign_id, lock=True)
    if campaign.status != "active":
        raise InvalidState(f"campaign {campaign_id} is {campaign.status}; only an active one can be paused "
                           "(a scheduled one is not running yet: stop it to cancel it)")
    campaign.status = "paused"


def resume(session: Session, campaign_id: int, now: datetime) -> None:
    """Continue a paused campaign (or a suspended one whose cause was fixed: its document
    must validate again): everything that came due meanwhile runs now, and a node that kept
    failing is tried again (engine/core/node_failures.py)."""
    campaign = get(session, campaign_id, lock=True)
    if campaign.status not in ("paused", "suspended"):
        raise InvalidState(f"campaign {campaign_id} is {campaign.status}; only a paused or suspended one "
                           "can be resumed")
    if campaign.status == "suspended":
        ensure_valid(session.get_one(CampaignVersion, campaign.version_id).document)
        _ensure_providers_exist(session, campaign)
    campaign.status, campaign.status_reason = "active", ""
    node_failures.forget(session, campaign_id)  # a node that failed gets its tries afresh
    request_due_wakeups(session, campaign_id, now)


def stop(session: Session, campaign_id: int, now: datetime) -> int:
    """End every journey of the campaign; returns how many were ended."""
    campaign = get(session, campaign_id, lock=True)
    if campaign.status in ("stopped", "draft"):
        raise InvalidState(f"campaign {campaign_id} is {campaign.status}; nothing to stop")
    campaign.status, campaign.finished_at = "stopped", now
    return db.rowcount(session.execute(
        update(Enrollment).where(Enrollment.campaign_id == campaign_id, Enrollment.state == "active")
        .values(state="exited", due_at=None, updated_at=now),
        execution_options={"synchronize_session": False},
    )) or 0


def request_due_wakeups(session: Session, campaign_id: int | None, now: datetime, *, overdue_by: Any = None) -> int:
    """Ask for a wakeup for each (version, node) with positions due by `now` (minus
    `overdue_by`, to leave the normal wakeups their time); returns how many were asked."""
    cutoff = now - overdue_by if overdue_by is not None else now
    query = (
        select(Enrollment.version_id, Enrollment.node_id)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(ACTIVE, Enrollment.due_at <= cutoff, Campaign.status == "active")
        .group_by(Enrollment.version_id, Enrollment.node_id)
    )
    if campaign_id is not None:
        query = query.where(Enrollment.campaign_id == campaign_id)
    due = session.execute(query).all()
    for version_id, node_id in due:
        wakeups.request(session, version_id, node_id, now)
    return len(due)


def finish_completed(session: Session, now: datetime) -> list[int]:
    """Mark finished the active campaigns that admit nobody new (no scheduled run left, no
    open continuous trigger) and have nobody in flight."""
    finished = []
    tz = schedule.account_zone(session)
    for campaign in session.scalars(select(Campaign).where(Campaign.status == "active")):
        entry = entry_node(session.get_one(CampaignVersion, campaign.version_id).document)
        if schedule.admits_later(campaign, entry, now, tz):
            continue
        in_flight = session.scalar(select(Enrollment.id).where(
            Enrollment.campaign_id == campaign.id, Enrollment.state == "active").limit(1))
        if in_flight is None:
            campaign.status, campaign.finished_at = "finished", now
            finished.append(campaign.id)
    return finished


def _ensure_launchable(session: Session, campaign_id: int, document: Mapping[str, Any]) -> None:
    """A draft saved half-built launches only once nothing is left to fix: refused (422)
    with every error, each on its node and field, as the canvas shows them."""
    try:
        checked(session, document, keep_errors=False)
    except DocumentInvalid as exc:
        count = len(exc.details)
        raise DocumentInvalid(f"campaign {campaign_id} cannot be launched yet: {count} "
                              f"{'problem' if count == 1 else 'problems'} to fix first", exc.details) from None


def _ensure_providers_exist(session: Session, campaign: Campaign) -> None:
    """A campaign suspended because a provider config was removed resumes only once no
    version that customers are on (or will enter) names a missing config."""
    live = select(CampaignVersion.document).where(CampaignVersion.campaign_id == campaign.id, or_(
        CampaignVersion.id == campaign.version_id,
        exists(select(Enrollment.id).where(Enrollment.version_id == CampaignVersion.id, ACTIVE))))
    named = {(node["id"], node["settings"]["provider_id"]) for document in session.scalars(live)
             for node in document["nodes"] if isinstance(node.get("settings", {}).get("provider_id"), int)}
    known = set(session.scalars(select(ProviderConfig.id).where(ProviderConfig.id.in_({p for _, p in named}))))
    if missing := sorted((node_id, pid) for node_id, pid in named if pid not in known):
        raise InvalidState(f"campaign {campaign.id} still names provider config {missing[0][1]}, which was removed: "
                           "choose another provider and save, then resume",
                           [{"node_id": node_id, "pointer": "/settings/provider_id"} for node_id, _ in missing])


#: a campaign in these states has no journey in flight and nothing due: it may be deleted
DELETABLE = ("draft", "stopped", "finished")


def delete(session: Session, campaign_id: int) -> None:
    """Remove the campaign with its versions, journeys, counters and steps. A campaign that
    may still move customers must be stopped first, so nobody's journey ends by accident."""
    campaign = get(session, campaign_id, lock=True)
    if campaign.status not in DELETABLE:
        raise InvalidState(f"campaign {campaign_id} is {campaign.status}; stop it before deleting it",
                           [{"pointer": "/status", "message": f"must be one of {', '.join(DELETABLE)}"}])
    session.execute(delete_rows(JourneyStep).where(JourneyStep.campaign_id == campaign_id))  # no cascade there
    session.delete(campaign)
    session.flush()


def clone(session: Session, campaign_id: int, name: object = None) -> Campaign:
    """A new draft with the current document (and its tags and settings) of another campaign;
    a draft saved half-built is copied with its problems."""
    source = get(session, campaign_id)
    document = dict(session.get_one(CampaignVersion, source.version_id).document)
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise InvalidInput.field("/name", "must be a non-empty string of at most 200 characters")
    document["name"] = name.strip() if isinstance(name, str) else f"{source.name} (copy)"[:200]
    return create(session, document, draft=True)


@dataclass(frozen=True)
class NodeUpgrade:
    """What `upgrade_nodes` did with one node that was not on its type's newest version:
    `to_version` when it was upgraded, `reason` when it stays as it is."""

    node_id: str
    type: str
    from_version: int
    to_version: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def upgrade_nodes(session: Session, campaign_id: int, now: datetime | None = None
                  ) -> tuple[CampaignVersion, list[NodeUpgrade]]:
    """Run the registered migrations on every node of the campaign's current document that
    is behind its type's newest version, and save the result as a new campaign version
    (validated like any edit; customers in flight stay on theirs). A node whose type has no
    migration path stays as it is and is reported with the reason. Nothing to upgrade:
    no new version."""
    campaign = get(session, campaign_id, lock=True)
    current = session.get_one(CampaignVersion, campaign.version_id)
    document, report = upgraded_document(current.document)
    if not any(step.to_version for step in report):
        return current, report
    return save(session, campaign_id, document, now), report


def upgraded_document(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[NodeUpgrade]]:
    """The document with every node that can be upgraded on its type's newest version, and
    what happened to each node that was behind. MigrationFailed names the node's settings."""
    nodes, report = [], []
    for index, node in enumerate(document["nodes"]):
        new_node, step = _upgraded_node(index, node)
        nodes.append(new_node)
        if step is not None:
            report.append(step)
    upgraded = {step.node_id: step for step in report if step.to_version}
    edges = [_follow_port(edge, upgraded.get(edge["source"])) for edge in document["edges"]]
    return {**document, "nodes": nodes, "edges": edges}, report


def _follow_port(edge: Mapping[str, Any], step: NodeUpgrade | None) -> Mapping[str, Any]:
    """The edge leaving by the port that took its old port's place (a migration's `ports`)."""
    if step is None:
        return edge
    port = registry.upgraded_port(step.type, step.from_version, edge.get("source_port", "out"))
    return edge if port == edge.get("source_port", "out") else {**edge, "source_port": port}


def _upgraded_node(index: int, node: Mapping[str, Any]) -> tuple[Mapping[str, Any], NodeUpgrade | None]:
    newest = registry.get(node["type"])
    version = node.get("version")
    if newest is None or version is None or version >= newest.version:
        return node, None  # unknown types are validation's to report; unversioned ones are the newest
    old = registry.get(node["type"], version)
    settings = with_defaults(old.schema, node.get("settings", {})) if old is not None else node.get("settings", {})
    try:
        to_version, upgraded = registry.upgrade_settings(node["type"], version, settings)
    except registry.NoUpgradePath as exc:
        return node, NodeUpgrade(node["id"], node["type"], version, reason=exc.message)
    except registry.MigrationFailed as exc:
        raise InvalidInput.field(f"/nodes/{index}/settings", f"of node {node['id']!r} cannot be upgraded: "
                                                              f"{exc.message}") from None
    return {**node, "version": to_version, "settings": upgraded}, NodeUpgrade(node["id"], node["type"], version,
                                                                               to_version)
