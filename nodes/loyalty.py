"""Loyalty nodes: accrue bonus points in the customer's account with an external program.

Unlike `award_points` (our own points column, written in the step's transaction), an accrual
calls the loyalty program's API. It goes through the outbox with the exactly-once rules of a
send: one row per journey and node, an idempotency key on every call, and after a crash the
program is asked what it already holds (see engine/messaging/channels/loyalty.py). The customer waits
here until the program answered, so "accrue bonus points -> wait -> send message" tells them
about points that are really there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, func, true

from engine.sdk import DURATION, ref
from engine.sdk.data import Profile
from engine.sdk.wording import count_in_words, duration_in_words
from nodes.messaging import SendNode


class AccrueBonusPoints(SendNode):
    """Accrues points through the loyalty program's HTTP API (provider config of channel
    `loyalty`); `sent` once the program confirmed, `failed` if it refused, `skipped` for a
    customer the program cannot know (no external id and no email)."""

    type = "accrue_bonus_points"
    label = "Accrue bonus points"
    category = "audience"  # beside award_points in the palette, though it goes out like a message
    channel = "loyalty"
    capped = False  # points are not a message
    schema = {
        "type": "object",
        "properties": {
            "provider_id": ref("providers", "Loyalty program (the channel's default when empty)"),
            "content": {
                "type": "object", "title": "Accrual",
                "properties": {
                    "amount": {"title": "Points", "description": "a number, or a merge tag such as "
                               "{{ event.properties.total }}",
                               "anyOf": [{"title": "A number", "type": "number", "exclusiveMinimum": 0},
                                         {"title": "A merge tag", "type": "string", "minLength": 1,
                                          "maxLength": 500}]},
                    "expires_in": {**DURATION, "title": "Points expire after"},
                    "legal_entity": {"type": "string", "maxLength": 200, "title": "Legal entity"},
                    "description": {"type": "string", "maxLength": 1000, "title": "Description"},
                },
                "required": ["amount"],
            },
        },
        "required": ["content"],
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'+100 points, expire after 1 year' (a merge tag amount shown as written)."""
        content = settings.get("content") or {}
        amount = content.get("amount")
        text = f"+{count_in_words(amount)} points" if isinstance(amount, int | float) else f"Points: {amount}"
        expiry = content.get("expires_in")
        return text + (f", expire after {duration_in_words(expiry)}" if expiry else "")

    def __init__(self, node_id: str, settings: Mapping[str, Any]):
        super().__init__(node_id, {**settings, "deliver_immediately": True})  # no quiet hours for points

    def address_column(self) -> SQLColumnExpression[Any]:
        return func.coalesce(Profile.external_id, Profile.email)

    def reachable(self) -> ColumnElement[bool]:
        return true()
