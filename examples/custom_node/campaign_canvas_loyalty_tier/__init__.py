"""Campaign Canvas node type: split customers into bronze, silver and gold by their points.

Why a package of its own: it shows that a node type needs nothing from Campaign Canvas but
its SDK, `engine.sdk`, the only engine module imported here. It is published through the entry-point group
`campaign_canvas.nodes` (see setup.cfg) rather than registered with `@register` at import,
so the entry point is the one place that says it exists and Campaign Canvas registers it
when it loads its plugins.

It also shows how a node type evolves. Version 2 added an optional platinum tier (a setting
and, when it is set, a port). Campaigns saved with version 1 keep running on version 1, so
both versions stay published; `upgrade_1_to_2` is the migration the canvas's "Upgrade"
button (and `campaigns.upgrade_nodes`) runs to move a version 1 node to version 2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from engine.sdk import Batch, Migration, NodeType, Problem, Result
from engine.sdk.conditions import field, group, matching

__all__ = ["NODE_TYPES", "LoyaltyHoldout", "LoyaltyTierSplit", "LoyaltyTierSplitV1", "upgrade_1_to_2"]

TYPE = "loyalty_tier.split"


class LoyaltyTierSplitV1(NodeType):
    """Bronze below `silver` points, silver from `silver`, gold from `gold` points up."""

    type = TYPE
    version = 1
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
        return _ordered(node_id, settings, ("silver", "gold"))

    def process(self, batch: Batch) -> Result:
        return _split(batch, {"silver": self.settings["silver"], "gold": self.settings["gold"]})


class LoyaltyTierSplit(NodeType):
    """Version 2: the tiers of version 1, and a platinum tier from `platinum` points when
    that is set (its port appears with it, so a node without it has version 1's ports)."""

    type = TYPE
    version = 2
    label = "Split by loyalty tier"
    category = "custom"
    description = "Sends customers out by bronze, silver, gold (or platinum) according to their points."
    ports = ("bronze", "silver", "gold")
    schema = {
        "type": "object",
        "properties": {
            **LoyaltyTierSplitV1.schema["properties"],
            "platinum": {"type": "integer", "minimum": 0, "title": "Platinum from (points)",
                         "description": "Leave empty for no platinum tier."},
        },
        "additionalProperties": False,
    }

    @classmethod
    def ports_for(cls, settings: Mapping[str, Any]) -> list[str]:
        return [*cls.ports, "platinum"] if settings.get("platinum") is not None else list(cls.ports)

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        return _ordered(node_id, settings, ("silver", "gold", "platinum"))

    def process(self, batch: Batch) -> Result:
        tiers = {name: self.settings[name] for name in ("silver", "gold", "platinum")
                 if self.settings.get(name) is not None}
        return _split(batch, tiers)


def upgrade_1_to_2(settings: dict[str, Any]) -> dict[str, Any]:
    """Version 1 settings as version 2 settings: the same tiers, with version 1's defaults
    written out (a later change of version 2's defaults must not move an upgraded node's
    customers), and no platinum tier (a version 1 node had none: its customers keep their
    paths)."""
    return {"silver": settings.get("silver", 100), "gold": settings.get("gold", 500)}


class LoyaltyHoldout(NodeType):
    """Keeps a fixed share of customers out of the loyalty programme's messages, chosen by a
    hash of their id (the same customer is always held out), to measure what the programme
    adds. It declares the `holdout` capability, so the campaign report shows its uplift
    exactly as it shows the built-in control group's."""

    type = "loyalty_tier.holdout"
    label = "Loyalty holdout"
    category = "custom"
    description = "Holds a share of customers out of the loyalty messages, to measure their effect."
    ports = ("treated", "held_out")
    capabilities = frozenset({"holdout"})
    schema = {
        "type": "object",
        "properties": {"percent": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10,
                                   "title": "Customers held out (%)"}},
        "additionalProperties": False,
    }

    @classmethod
    def holdout_ports(cls, settings: Mapping[str, Any]) -> tuple[str, str]:
        return ("held_out", "treated")

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        return f"{settings.get('percent', 10)}% held out"

    def process(self, batch: Batch) -> Result:
        held = batch.only(pid for pid in batch.profile_ids if _bucket(pid) < self.settings["percent"])
        return {"held_out": held, "treated": batch.without(held)}


def _bucket(profile_id: int) -> int:
    """0-99, fixed per customer: a hash, so held-out customers are not only the oldest ids."""
    return int.from_bytes(hashlib.sha256(f"loyalty-holdout:{profile_id}".encode()).digest()[:4], "big") % 100


#: what the entry point publishes: both versions of the split and the migration between
#: them, and the holdout
NODE_TYPES = (LoyaltyTierSplitV1, LoyaltyTierSplit, Migration(TYPE, 1, 2, upgrade_1_to_2), LoyaltyHoldout)


def _ordered(node_id: str, settings: Mapping[str, Any], names: tuple[str, ...]) -> list[Problem]:
    """Each tier that is set must start above the one below it."""
    present = [name for name in names if settings.get(name) is not None]
    return [Problem(code="tiers_out_of_order", node_id=node_id, pointer=f"/settings/{upper}",
                    message=f"Node {node_id!r}: {upper} ({settings[upper]} points) must be more than "
                            f"{lower} ({settings[lower]} points).")
            for lower, upper in pairwise(present) if settings[upper] <= settings[lower]]


def _split(batch: Batch, starts: Mapping[str, int]) -> Result:
    """Each tier from its start up to the next tier's start, bronze below the first one.

    Set work in SQL over the whole batch, in the product's rule language: one query a tier."""
    bounds = list(starts.items())
    out: dict[str, Batch] = {}
    rest = batch
    for i, (tier, start) in enumerate(bounds):
        rules = [field("points", "gte", start)]
        if i + 1 < len(bounds):
            rules.append(field("points", "lt", bounds[i + 1][1]))
        out[tier] = matching(batch, group(*rules))
        rest = rest.without(out[tier])
    return {"bronze": rest, **out}
