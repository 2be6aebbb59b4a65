"""Entry nodes: how customers start a journey."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from engine.batch import Batch
from engine.clock import parse_duration
from engine.models import AudienceMember, Enrollment, Profile, Segment
from engine.registry import NodeType, Result, register
from nodes._schema import DURATION, ID_REF


class _Entry(NodeType):
    category = "trigger"
    entry = True

    def process(self, batch: Batch) -> Result:
        return {"out": batch}


@register
class SelectFromSegment(_Entry):
    """Enrolls, when the campaign launches, every customer of a segment, an audience, or all."""

    type = "select_segment"
    label = "Select customers from segment"
    description = "At launch, everyone in the chosen segment or audience enters the campaign once."
    schema = {
        "type": "object",
        "properties": {
            "source": {"type": "string", "enum": ["segment", "audience", "all"], "default": "segment",
                       "title": "Customers from"},
            "segment_id": {**ID_REF, "title": "Segment"},
            "audience_id": {**ID_REF, "title": "Audience"},
        },
        "required": ["source"],
        "allOf": [
            {"if": {"properties": {"source": {"const": "segment"}}}, "then": {"required": ["segment_id"]}},
            {"if": {"properties": {"source": {"const": "audience"}}}, "then": {"required": ["audience_id"]}},
        ],
    }

    def launch_audience(self, session: Session, now: datetime) -> Select[Any]:
        from engine.rules import matching_profiles

        source = self.settings["source"]
        if source == "audience":
            return select(AudienceMember.profile_id).where(AudienceMember.audience_id == self.settings["audience_id"])
        if source == "segment":
            segment = session.get(Segment, self.settings["segment_id"])
            if segment is None:
                from engine.errors import InvalidState

                raise InvalidState(f"segment {self.settings['segment_id']} does not exist",
                                   [{"node_id": self.id, "pointer": "/settings/segment_id"}])
            return matching_profiles(session, segment.rules, now)
        return select(Profile.id)


@register
class EventTrigger(_Entry):
    """Starts a journey each time (or once, or once per period) a customer performs an event."""

    type = "event_trigger"
    label = "Event"
    continuous = True
    schema = {
        "type": "object",
        "properties": {
            "event": {"type": "string", "minLength": 1, "maxLength": 128, "title": "Event name"},
            "frequency": {"type": "string", "enum": ["each", "once", "period"], "default": "each",
                          "title": "Launch", "description": "each time, once per customer, or once per period"},
            "period": {**DURATION, "title": "Period", "default": "1d"},
        },
        "required": ["event"],
    }

    def admit(self, session: Session, campaign_id: int, profile_ids: list[int], now: datetime) -> list[int]:
        """The customers this event may enroll, given the frequency setting."""
        frequency = self.settings.get("frequency", "each")
        if frequency == "each" or not profile_ids:
            return list(profile_ids)
        earlier = select(Enrollment.profile_id).where(
            Enrollment.campaign_id == campaign_id, Enrollment.profile_id.in_(profile_ids),
            Enrollment.parent_id.is_(None),
        )
        if frequency == "period":
            earlier = earlier.where(Enrollment.entered_at > now - parse_duration(self.settings.get("period", "1d")))
        seen = set(session.scalars(earlier))
        admitted: list[int] = []
        for pid in profile_ids:  # one event may name a customer twice: admit once
            if pid not in seen:
                seen.add(pid)
                admitted.append(pid)
        return admitted

