"""RQ job functions. Kept tiny: they find the process runtime and call into the engine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine import clock, db, runtime, schedule, segments
from engine.wakeups import RQWakeups


def wake(version_id: int, node_id: str) -> int:
    """Run everything due at (version, node). Returns how many positions were processed.
    A full first chunk means a backlog: helpers are asked to share it (see RQWakeups.fan_out)."""
    rt = runtime.current()
    first = rt.executor.run_chunk(version_id, node_id)
    if first == 0:
        return 0
    helpers = rt.wake_helpers()
    if first >= rt.executor.chunk_size and helpers and isinstance(rt.wakeups, RQWakeups):
        rt.wakeups.fan_out(version_id, node_id, helpers)
    return first + rt.executor.run(version_id, node_id).processed


def wake_helper(version_id: int, node_id: str) -> int:
    """A helper of `wake`: claims chunks of the same backlog until it is gone."""
    return runtime.current().executor.run(version_id, node_id).processed


def sweep() -> dict[str, Any]:
    """Sweep, then schedule the next sweep (deterministic id: two sweepers never pile up)."""
    rt = runtime.current()
    result = rt.sweep()
    if isinstance(rt.wakeups, RQWakeups):
        rt.wakeups.schedule_sweep(timedelta(seconds=rt.settings.sweep_seconds))
    return result


def run_schedule(campaign_id: int) -> int:
    """Run the campaign's scheduled entry if it is due (a repeated or late job finds nothing
    due and does nothing). Returns how many journeys started."""
    with db.transaction(runtime.current().sessions) as session:
        return schedule.run_due(session, clock.now(), campaign_id=campaign_id)


def refresh_segments() -> dict[int, int]:
    """Re-evaluate the segments watched by "enters segment" triggers; the next refresh is
    asked for while any campaign still watches one. Returns {segment id: journeys started}."""
    return segments.refresh_watched(runtime.current().sessions, clock.now())


def dispatch() -> dict[str, Any]:
    """Send what the outbox has due (and recover batches of dispatchers that died)."""
    from engine.dispatcher import Dispatcher

    return Dispatcher.from_runtime(runtime.current()).run().to_dict()
