"""What every benchmark here shares: a real `serve` process with an API key; each size runs in a
fresh process (so its peak RSS is its own) against a fresh database (a throwaway PostgreSQL
database when DATABASE_URL names one)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

CLI = str(Path(sys.executable).parent / "campaign-canvas")


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


def sized_main(script: str, doc: str | None, benchmark: str,
               run_one: Callable[[int, argparse.Namespace], dict[str, Any]],
               describe: Callable[[argparse.Namespace], dict[str, Any]], *, default_sizes: str = "10000,100000",
               options: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
    """The command line of a benchmark run at several sizes: `--sizes 10000,100000` runs each
    size in a fresh process (the hidden `--one SIZE`, with `options` passed on) on a fresh
    database, and prints them as one JSON object opened by `describe(args)`."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--sizes", default=default_sizes)
    for flag, settings in options:
        parser.add_argument(flag, **settings)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    passed = [part for flag, _ in options for part in (flag, str(getattr(args, flag.lstrip("-").replace("-", "_"))))]
    results = run_sizes(script, (int(n) for n in args.sizes.split(",")), *passed)
    print(json.dumps({"benchmark": benchmark, **describe(args), "results": results}, indent=2))


def api_key(env: dict[str, str], name: str) -> str:
    """An admin key made with the CLI (which also migrates the database)."""
    made = subprocess.run([CLI, "create-api-key", name, "--role", "admin"], env=env,
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise SystemExit(f"create-api-key failed: {made.stderr}")
    return made.stdout.strip().splitlines()[-1]


class Server:
    """`campaign-canvas serve` on a free port, stopped on exit."""

    def __init__(self, env: dict[str, str], workers: int = 1):
        self.env, self.workers = env, workers
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(env["CC_INSTANCE_DIR"]) / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([CLI, "serve", "--port", str(self.port), "--workers", str(self.workers)],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.base + "/login", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("the server did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if "Traceback" in (text := self.log.read_text(errors="replace")):
            print(f"server log ({self.log}) has a traceback:\n{text[-3000:]}", file=sys.stderr)
