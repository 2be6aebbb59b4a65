"""What a message says to whom: a node's content (its template or inline content) and each
recipient's merge context, loaded for a whole batch in one query."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.batch import id_chunks
from engine.core.errors import NotFound
from engine.core.models import Campaign, Enrollment, Profile, Template
from engine.core.templates import Renderer, context_for

_PROFILE_FIELDS = (Profile.external_id, Profile.email, Profile.phone, Profile.timezone, Profile.points,
                   Profile.attributes)


def renderer_for(session: Session, settings: Mapping[str, Any]) -> Renderer:
    """The compiled content of a send node: its saved template, or its inline content."""
    if settings.get("template_id"):
        template = session.get(Template, settings["template_id"])
        if template is None:
            raise NotFound(f"template {settings['template_id']} does not exist",
                           [{"pointer": "/settings/template_id"}])
        return Renderer(template.content, template.defaults)
    return Renderer(settings.get("content", {}), {})


def load_contexts(session: Session, enrollment_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{enrollment id: merge context} (profile, trigger event, campaign) for many recipients."""
    contexts: dict[int, dict[str, Any]] = {}
    columns = (Enrollment.id, Enrollment.context, Campaign.id, Campaign.name, *_PROFILE_FIELDS)
    for chosen in id_chunks(session, Enrollment.id, list(dict.fromkeys(enrollment_ids))):
        rows = session.execute(select(*columns).join(Profile, Profile.id == Enrollment.profile_id)
                               .join(Campaign, Campaign.id == Enrollment.campaign_id).where(chosen))
        for eid, trigger, campaign_id, campaign_name, *fields in rows:
            profile = dict(zip(("external_id", "email", "phone", "timezone", "points", "attributes"), fields,
                               strict=True))
            contexts[eid] = context_for(profile, trigger, {"id": campaign_id, "name": campaign_name})
    return contexts
