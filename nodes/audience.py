"""Audience nodes: change who is in an audience, and customers' points, for a whole batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, literal, select, update

from engine.sdk import Batch, NodeType, Result, id_chunks, ref
from engine.sdk.data import AudienceMember, Profile, upsert
from engine.sdk.wording import count_in_words, stored_name

_AUDIENCE = {"type": "object", "properties": {"audience_id": ref("audiences", "Audience")},
             "required": ["audience_id"]}


def _audience_summary(settings: Mapping[str, Any]) -> str:
    """'Audience: Newsletter', by the name the caller provided."""
    name = stored_name("audiences", settings.get("audience_id"))
    return f"Audience: {name}" if name else "A chosen audience"


class AddToAudience(NodeType):
    type = "add_to_audience"
    label = "Add to audience"
    category = "audience"
    end_ports = frozenset({"out"})
    schema = _AUDIENCE

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        return _audience_summary(settings)

    def process(self, batch: Batch) -> Result:
        columns = ["audience_id", "profile_id", "added_at"]
        for chosen in id_chunks(batch.session, Profile.id, list(dict.fromkeys(batch.profile_ids))):
            rows = select(literal(self.settings["audience_id"]), Profile.id, literal(batch.now)).where(chosen)
            batch.session.execute(upsert(batch.session, AudienceMember).from_select(columns, rows)
                                  .on_conflict_do_nothing())
        return {"out": batch}


class ExcludeFromAudience(NodeType):
    type = "exclude_from_audience"
    label = "Exclude from audience"
    category = "audience"
    end_ports = frozenset({"out"})
    schema = _AUDIENCE

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        return _audience_summary(settings)

    def process(self, batch: Batch) -> Result:
        for members in id_chunks(batch.session, AudienceMember.profile_id, list(dict.fromkeys(batch.profile_ids))):
            batch.session.execute(delete(AudienceMember).where(
                AudienceMember.audience_id == self.settings["audience_id"], members))
        return {"out": batch}


#: the most points one node may award or deduct at a pass: a balance is a 64-bit number, and
#: an award beyond it would save, then fail every run
MAX_POINTS = 1_000_000_000


class AwardPoints(NodeType):
    """Adds (or, negative, takes away) points; a customer who passes twice gets them twice."""

    type = "award_points"
    label = "Award points"
    category = "audience"
    end_ports = frozenset({"out"})
    schema = {"type": "object", "properties": {"points": {"type": "integer", "not": {"const": 0},
                                                          "minimum": -MAX_POINTS, "maximum": MAX_POINTS,
                                                          "title": "Points (negative to deduct)"}},
              "required": ["points"]}

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'+10 points' or '−5 points'."""
        points = settings.get("points", 0)
        sign = "+" if points > 0 else "−"
        return f"{sign}{count_in_words(abs(points))} point{'s' if abs(points) != 1 else ''}"

    def process(self, batch: Batch) -> Result:
        times = Counter(batch.profile_ids)
        by_multiple: dict[int, list[int]] = {}
        for pid, n in times.items():
            by_multiple.setdefault(n, []).append(pid)
        for n, ids in by_multiple.items():
            for chosen in id_chunks(batch.session, Profile.id, ids):
                batch.session.execute(
                    update(Profile).where(chosen)
                    .values(points=Profile.points + n * self.settings["points"], updated_at=batch.now),
                    execution_options={"synchronize_session": False},
                )
        return {"out": batch}
