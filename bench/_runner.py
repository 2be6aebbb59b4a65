"""What every benchmark here shares: each size runs in a fresh process (so its peak RSS is its
own) against a fresh database (a throwaway PostgreSQL database when DATABASE_URL names one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable


def fresh_postgres_database(url: str) -> tuple[str, Callable[[], None]]:
    """A throwaway database next to the one in `url`, and how to drop it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"cc_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return make_url(url).set(database=name).render_as_string(hide_password=False), drop


def run_sizes(script: str, sizes: Iterable[int], *extra: str) -> list[dict]:
    """Run `script --one SIZE --database-url URL *extra` per size; collect its JSON line."""
    results = []
    for size in sizes:
        database_url, drop = "", None
        if os.environ.get("DATABASE_URL", "").startswith("postgresql"):
            database_url, drop = fresh_postgres_database(os.environ["DATABASE_URL"])
        try:
            out = subprocess.run([sys.executable, script, "--one", str(size), "--database-url", database_url, *extra],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            if drop:
                drop()
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
