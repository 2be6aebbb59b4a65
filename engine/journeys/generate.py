"""Deterministic fake customers for simulations, demos and benchmarks (same seed, same data)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

CITIES = ["Paris", "Berlin", "Madrid", "Lisbon", "Warsaw", "Rome", "Dublin", "Vienna"]
TIMEZONES = ["Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Lisbon", "America/New_York", None]
PLANS = ["free", "pro", "business"]


def profiles(count: int, *, seed: int = 7, start: int = 0) -> Iterator[dict[str, Any]]:
    """Yield `count` profile dicts (Profile columns), streaming: never a whole population in memory."""
    rng = random.Random(seed * 1_000_003 + start)
    for i in range(start, start + count):
        yield {
            "external_id": f"cust-{i:07d}",
            "email": f"customer{i}@example.com",
            "phone": f"+1555{i:07d}",
            "timezone": rng.choice(TIMEZONES),
            "points": rng.randrange(0, 500),
            "push_tokens": [],
            "attributes": {
                "city": rng.choice(CITIES),
                "age": rng.randrange(18, 80),
                "plan": rng.choice(PLANS),
                "vip": rng.random() < 0.1,
            },
        }
