"""A Campaign Canvas node type written only from the README's guide ("Writing your own node
type"): split customers by a numeric attribute, where some customers hold values that are
not numbers ("n/a", "", a list) and must go the "low" way without failing the batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.sdk import Batch, NodeType, Result
from engine.sdk.conditions import attribute, matching

__all__ = ["NODE_TYPES", "HighValue"]


class HighValue(NodeType):
    """Customers worth at least `threshold` go by "high", the others by "low"."""

    type = "acme.high_value"
    label = "High-value customers"
    category = "custom"
    description = "Customers whose lifetime value reaches the threshold go one way, the others the other."
    ports = ("high", "low")
    schema = {
        "type": "object",
        "properties": {
            "attribute": {"type": "string", "default": "lifetime_value", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                          "title": "Customer attribute"},
            "threshold": {"type": "number", "default": 100, "title": "High from"},
        },
        "additionalProperties": False,
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        return f"{settings.get('attribute', 'lifetime_value')} ≥ {settings.get('threshold', 100)}"

    def process(self, batch: Batch) -> Result:
        high = matching(batch, attribute(self.settings["attribute"], "gte", self.settings["threshold"]))
        return {"high": high, "low": batch.without(high)}


NODE_TYPES = [HighValue]
