"""Campaign Canvas node type: split customers into bronze, silver and gold by their points.

Why a package of its own: it shows that a node type needs nothing from Campaign Canvas but
the public `NodeType` API. It is published through the entry-point group
`campaign_canvas.nodes` (see setup.cfg) rather than registered with `@register` at import,
so the entry point is the one place that says it exists and Campaign Canvas registers it
when it loads its plugins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from engine.batch import Batch
from engine.models import Profile
from engine.registry import NodeType, Result
from engine.validation import Problem

__all__ = ["LoyaltyTierSplit"]


class LoyaltyTierSplit(NodeType):
    """Bronze below `silver` points, silver from `silver`, gold from `gold` points up."""

    type = "loyalty_tier.split"
    label = "Split by loyalty tier"
    category = "custom"
    description = "Sends customers out by bronze, silver or gold according to their points."
    ports = ("bronze", "silver", "gold")
    schema = {
        "type": "object",
        "properties": {
            "silver": {"type": "integer", "minimum": 0, "default": 100, "title": "Silver from (points)"},
            "gold": {"type": "integer", "minimum": 0, "default": 500, "title": "Gold from (points)"},
        },
        "additionalProperties": False,
    }

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        # A rule between two fields: JSON Schema cannot say it, so it is checked here.
        if settings["gold"] > settings["silver"]:
            return []
        return [Problem(code="tiers_out_of_order", node_id=node_id, pointer="/settings/gold",
                        message=f"Node {node_id!r}: gold ({settings['gold']} points) must be more than "
                                f"silver ({settings['silver']} points).")]

    def process(self, batch: Batch) -> Result:
        # Set work in SQL over the whole batch: `matching` restricts the query to its profiles.
        silver, gold = self.settings["silver"], self.settings["gold"]
        gold_tier = batch.matching(select(Profile.id).where(Profile.points >= gold), Profile.id)
        silver_tier = batch.matching(
            select(Profile.id).where(Profile.points >= silver, Profile.points < gold), Profile.id
        )
        return {"bronze": batch.without(gold_tier).without(silver_tier), "silver": silver_tier, "gold": gold_tier}
