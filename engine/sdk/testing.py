"""Test a node type the way the engine runs it: a campaign document, N customers and their
events, on a virtual clock (waits take no wall time), with counts per node and port.

    from engine.sdk.testing import run

    def test_big_spenders_go_left():
        result = run(document, profiles=[{"attributes": {"ltv": 900}}, {"attributes": {"ltv": "n/a"}}])
        assert result.ports("split") == {"yes": 1, "no": 1}

`run` validates the document first (DocumentInvalid, listing every problem with its place,
when it is not a campaign the product would launch), creates and launches it in a private
SQLite database (or the empty database at `database_url`, e.g. a PostgreSQL one), fires the
events when the clock reaches them, and drives every wait, A/B evaluation and send; nothing
leaves the machine (messages are recorded, not sent). The node types installed in the
environment, and any registered in the test (`registered`), are available to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.core import registry
from engine.core.clock import parse_duration, to_utc_naive
from engine.core.errors import DocumentInvalid
from engine.core.registry import NodeType
from engine.core.validation import ensure_valid
from engine.journeys.simulate import Simulation, SimulationResult

__all__ = ["DocumentInvalid", "Run", "registered", "run"]

#: where the virtual clock starts unless the test says otherwise: a fixed instant, so a
#: test never depends on today's date
START = datetime(2026, 1, 5, 9, 0)


@dataclass(frozen=True)
class Run:
    """What happened to the customers: per node, how many entered, wait there, and left by
    each port; and what would have been sent."""

    result: SimulationResult

    def node(self, node_id: str) -> dict[str, Any]:
        """{"entered": n, "waiting": n, "left": {port: n}} of one node (KeyError naming it)."""
        try:
            return dict(self.result.nodes[node_id])
        except KeyError:
            raise KeyError(f"no node {node_id!r} in the campaign (nodes: {', '.join(self.result.nodes)})") from None

    def ports(self, node_id: str) -> dict[str, int]:
        """How many left `node_id` by each port (ports nobody took are absent)."""
        return {port: n for port, n in self.node(node_id).get("left", {}).items() if n}

    def entered(self, node_id: str) -> int:
        return self.node(node_id).get("entered", 0)

    def waiting(self, node_id: str) -> int:
        return self.node(node_id).get("waiting", 0)

    @property
    def messages(self) -> dict[str, Any]:
        """What send nodes would have sent: {"count": n, "sample": [...]}."""
        return self.result.messages


def run(document: Mapping[str, Any], profiles: Sequence[Mapping[str, Any]] = (),
        events: Sequence[Mapping[str, Any]] = (), *, start: datetime = START, until: str | timedelta = "30d",
        account_timezone: str = "UTC", database_url: str | None = None) -> Run:
    """Run `document` for `until` (a duration, e.g. "7d") from `start` on these customers.

    `profiles`: customer fields (email, phone, timezone, points, attributes, external_id).
    `events`: {"at": "+2d" (after start) or an ISO time, "event": name, "profile": index
    into `profiles`, "properties": {...}}.
    """
    ensure_valid(document)
    span = parse_duration(until) if isinstance(until, str) else until
    with Simulation(document, start=to_utc_naive(start), account_timezone=account_timezone,
                    database_url=database_url) as sim:
        sim.add_profiles([dict(p) for p in profiles])
        sim.add_events([dict(e) for e in events])
        return Run(sim.run(until=span))


@contextmanager
def registered(*node_types: type[NodeType]) -> Iterator[None]:
    """Register node types for the duration of a test (the registry is restored after),
    e.g. a type under development that is not installed as a plugin yet."""
    with registry.snapshot():
        for cls in node_types:
            registry.register(cls, replace=True)
        yield
