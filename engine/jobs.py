"""RQ job functions. Kept tiny: they find the process runtime and call into the engine.

Every job works within the runtime's time budget (CC_JOB_BUDGET_SECONDS, engine/core/budget.py)
and hands what is left to a fresh job under a deterministic id; each is enqueued with an
explicit timeout well above the budget (engine/core/wakeups.py). A job killed anyway loses
nothing: positions and the outbox are the truth, and the sweeper re-asks for whatever is
overdue or stranded.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from engine.core import clock, db
from engine.core.wakeups import RQWakeups
from engine.journeys import schedule, segments
from engine.ops import runtime


def wake(version_id: int, node_id: str) -> int:
    """Run what is due at (version, node), within the budget. Returns how many positions were
    processed. A full first chunk means a backlog: helpers are asked to share it (see
    RQWakeups.fan_out)."""
    rt = runtime.current()
    helpers = rt.wake_helpers()
    fan_out = None
    if helpers and isinstance(rt.wakeups, RQWakeups):
        fan_out = functools.partial(rt.wakeups.fan_out, version_id, node_id, helpers)
    return rt.executor.run(version_id, node_id, rt.budget(), on_backlog=fan_out).processed


def wake_helper(version_id: int, node_id: str) -> int:
    """A helper of `wake`: claims chunks of the same backlog until it is gone (or its budget)."""
    rt = runtime.current()
    return rt.executor.run(version_id, node_id, rt.budget()).processed


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


def refresh_segments(after_segment_id: int = 0) -> dict[int, int]:
    """Re-evaluate the segments watched by "enters segment" triggers (those after
    `after_segment_id`, for a job that goes on where a previous one's budget ended); the
    next refresh is asked for while any campaign still watches one. Returns {segment id:
    journeys started}."""
    rt = runtime.current()
    refreshed = segments.refresh_watched(rt.sessions, clock.now(), after=after_segment_id, budget=rt.budget())
    if refreshed.left_after is not None and isinstance(rt.wakeups, RQWakeups):
        rt.wakeups.continue_segment_refresh(refreshed.left_after)
    return refreshed.started


def dispatch() -> dict[str, Any]:
    """Send what the outbox has due, within the budget (and recover batches of dispatchers
    that died)."""
    from engine.messaging.dispatcher import Dispatcher

    rt = runtime.current()
    return Dispatcher.from_runtime(rt).run(budget=rt.budget()).to_dict()
