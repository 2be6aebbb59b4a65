"""For entry nodes that run by themselves at set times: typed local times, time zones,
cron expressions and "every N" schedules, as UTC instants that keep their wall-clock time
across daylight-saving changes (engine/core/calendar.py explains how)."""

from engine.core.calendar import (
    MIN_LEAD,
    check_cron,
    local_instant,
    next_run,
    parse_local,
    schedule_zone,
    zone,
)

__all__ = ["MIN_LEAD", "check_cron", "local_instant", "next_run", "parse_local", "schedule_zone", "zone"]
