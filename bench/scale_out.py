"""Scale-out: profiles/s through the reference 6-node campaign with 1, 2 and 4 real
`campaign-canvas worker` processes on one PostgreSQL and one Redis, on the wall clock.

The campaign is engine_throughput's (select everyone → filter → A/B test → award points →
wait → add to audience) with its delays shortened so a run ends in wall time: the A/B
evaluation period becomes 3 s and the wait 0.6 s (both in every run, so they are a fixed
part of each figure). Per worker count: a fresh database, the profiles loaded (not timed),
the workers started and registered with RQ (not timed), then the campaign launched; the
clock runs from the launch until no journey is active.

    python bench/scale_out.py                                   # 200,000 customers; 1, 2, 4 workers
    python bench/scale_out.py --profiles 50000 --workers 1,4
    python bench/scale_out.py --database-url postgresql+psycopg://postgres@127.0.0.1/mine  # emptied per run

Without --database-url each run gets a throwaway database next to CC_BENCH_PG_URL
(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres), dropped afterwards.
Redis: REDIS_URL, else redis://127.0.0.1:6379/0 (a queue name of its own per run).

Prints one JSON object: {"workers": {"1": {"profiles_per_s", "seconds"}, ...}, ...}.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _runner import fresh_postgres_database  # noqa: E402
from engine_throughput import CAMPAIGN as REFERENCE  # noqa: E402

CLI = str(Path(sys.executable).parent / "campaign-canvas")
PG_ADMIN_URL = os.environ.get("CC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def campaign() -> dict:
    """The reference campaign with wall-clock-friendly delays (same graph, same node types)."""
    document = copy.deepcopy(REFERENCE)
    document["name"] = "Benchmark: 6-node flow, scale-out"
    for node in document["nodes"]:
        if node["type"] == "ab_test":
            node["settings"]["evaluation_period"] = "0.05m"
        if node["type"] == "wait":
            node["settings"].update(amount=0.01, unit="minutes")
    return document


def _empty(database_url: str) -> None:
    from sqlalchemy import text

    from engine.core import db
    from engine.core.models import Base

    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def run_one(workers: int, size: int, database_url: str, redis_url: str, chunk_size: int) -> dict:
    from redis import Redis
    from rq import Worker
    from sqlalchemy import func, insert, select

    from engine.core import clock, db
    from engine.core.config import Settings
    from engine.core.models import Audience, Enrollment, Profile
    from engine.journeys import campaigns
    from engine.journeys.generate import profiles
    from engine.ops import runtime
    from engine.ops.runtime import Runtime

    db.upgrade(database_url)
    queue = f"bench-scale-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=database_url, redis_url=redis_url, queue_name=queue, chunk_size=chunk_size,
                        bucket_seconds=1, sweep_seconds=5)
    rt = Runtime(settings)
    clock.use(clock.SystemClock())
    runtime.use(rt)
    with db.transaction(rt.sessions) as session:
        session.add(Audience(id=1, name="bench"))
        generated = profiles(size)
        while rows := list(islice(generated, 5000)):
            session.execute(insert(Profile), rows)

    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_QUEUE": queue,
           "CC_CHUNK_SIZE": str(chunk_size), "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "5"}
    procs = [subprocess.Popen([CLI, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for _ in range(workers)]
    try:
        conn = Redis.from_url(redis_url)
        deadline = time.monotonic() + 60
        while len(Worker.all(connection=conn, queue=rt.queue)) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"workers did not start: {[p.poll() for p in procs]}")
            time.sleep(0.2)

        start = time.perf_counter()
        with db.transaction(rt.sessions) as session:
            cid = campaigns.create(session, campaign()).id
            entered = campaigns.launch(session, cid, clock.now())
        active = 1
        while active:
            time.sleep(0.25)
            with rt.sessions() as session:
                active = session.scalar(select(func.count()).select_from(Enrollment).where(
                    Enrollment.campaign_id == cid, Enrollment.state == "active"))
            if time.perf_counter() - start > 3600:
                raise SystemExit(f"not done after an hour: {active} journeys active")
        seconds = time.perf_counter() - start
        with rt.sessions() as session:
            done = session.scalar(select(func.count()).select_from(Enrollment).where(
                Enrollment.campaign_id == cid, Enrollment.state == "done"))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        errors = [p.communicate(timeout=30)[1] or "" for p in procs]
        rt.close()
    if any("Traceback" in e for e in errors):
        print(next(e for e in errors if "Traceback" in e)[-3000:], file=sys.stderr)
    return {"profiles_per_s": round(size / seconds), "seconds": round(seconds, 2), "entered": entered,
            "journeys_done": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--chunk-size", type=int, default=int(os.environ.get("CC_CHUNK_SIZE", 5000)))
    parser.add_argument("--database-url", default="", help="use (and empty per run) this database")
    args = parser.parse_args()
    from engine.core import registry

    registry.load()
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    results = {}
    for workers in (int(n) for n in args.workers.split(",")):
        if args.database_url:
            database_url, drop = args.database_url, None
            from engine.core import db

            db.upgrade(database_url)
            _empty(database_url)
        else:
            database_url, drop = fresh_postgres_database(PG_ADMIN_URL)
        try:
            results[str(workers)] = run_one(workers, args.profiles, database_url, redis_url, args.chunk_size)
        finally:
            if drop:
                drop()
        print(f"{workers} workers: {results[str(workers)]}", file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "scale_out", "profiles": args.profiles, "chunk_size": args.chunk_size,
                      "campaign_nodes": len(REFERENCE["nodes"]), "cpus": os.cpu_count(), "workers": results},
                     indent=2))


if __name__ == "__main__":
    main()
