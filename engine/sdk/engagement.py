"""For node types that engage customers on the product's own surfaces (popups, polls):
popup report tokens and poll response counts per period."""

from engine.core.engagement import PERIODS, count_responses, new_token, period_start

__all__ = ["PERIODS", "count_responses", "new_token", "period_start"]
