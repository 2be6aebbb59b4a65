"""`campaign-canvas`: serve, worker, validate, simulate, demo, migrate."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.core import clock, registry
from engine.core.errors import CampaignCanvasError

if TYPE_CHECKING:
    from engine.core.wakeups import RQWakeups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="campaign-canvas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="UI + API, with an in-process worker (embedded defaults)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=None,
                   help="RQ workers beside the web server (default CC_SERVE_WORKERS, 1): one in this process, "
                        "the others as child processes; 0 serves API + UI only")

    sub.add_parser("worker", help="an RQ worker with the scheduler (run several, on several machines)")
    p = sub.add_parser("dispatcher", help="send the outbox: run one or more, on any machines")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks when idle")
    sub.add_parser("migrate", help="upgrade the database schema to the newest version")
    p = sub.add_parser("check", help="is the deployment ready? database schema, Redis, providers, workers")
    p.add_argument("--workers", type=int, default=None,
                   help="a problem when fewer RQ workers than this are alive (default: CC_EXPECT_WORKERS, 0)")

    p = sub.add_parser("validate", help="check a campaign document; prints every problem")
    p.add_argument("file", type=Path)

    p = sub.add_parser("simulate", help="run a campaign on generated profiles with a virtual clock")
    p.add_argument("file", type=Path)
    p.add_argument("--profiles", type=int, default=1000)
    p.add_argument("--start", default=None, help="virtual start time, ISO 8601 (default: now)")
    p.add_argument("--until", default="365d", help="how far the virtual clock may run (e.g. 30d)")
    p.add_argument("--seed", type=int, default=7)

    p = sub.add_parser("create-user", help="add a user who logs in to the web UI")
    p.add_argument("username")
    p.add_argument("--role", default="marketer", choices=["admin", "marketer", "viewer"])
    p.add_argument("--password", default=None,
                   help="default: CC_PASSWORD from the environment, else asked for (never echoed)")

    p = sub.add_parser("create-api-key", help="a key for programs; printed once, alone on the last line")
    p.add_argument("name")
    p.add_argument("--role", default="marketer", choices=["admin", "marketer", "viewer", "site"],
                   help="site: a key for web pages, accepted only by the popup endpoints")

    p = sub.add_parser("import-profiles",
                       help="import customers from a CSV or JSON file (format: engine/journeys/imports.py)")
    p.add_argument("file", type=Path)

    p = sub.add_parser("demo", help="seed example profiles, segments and campaigns")
    p.add_argument("--profiles", type=int, default=2000)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, each start
    registry.load()
    try:
        return int(COMMANDS[args.command](args) or 0)
    except CampaignCanvasError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for detail in exc.details:
            print(f"  {json.dumps(detail)}", file=sys.stderr)
        return 2


def _validate(args: argparse.Namespace) -> int:
    from engine.core.validation import errors, format_problems, validate_document

    document = _load_json(args.file)
    problems = validate_document(document)
    if problems:
        print(format_problems(problems))
    bad = errors(problems)
    print(f"{args.file}: {'invalid' if bad else 'valid'} ({len(bad)} errors, {len(problems) - len(bad)} warnings)")
    return 1 if bad else 0


def _simulate(args: argparse.Namespace) -> int:
    from engine.core.validation import ensure_valid
    from engine.journeys.generate import profiles
    from engine.journeys.simulate import Simulation

    document = _load_json(args.file)
    ensure_valid(document)  # every problem at once, before anything below reads the document
    try:
        start = clock.parse_instant(args.start) if args.start else clock.now()
    except ValueError:
        raise SystemExit(f"error: --start {args.start!r} is not an ISO 8601 time (e.g. 2026-12-01T08:00:00Z)") from None
    try:
        until = clock.parse_duration(args.until)
    except ValueError as exc:
        raise SystemExit(f"error: --until: {exc}") from None
    from engine.core.config import Settings

    with Simulation(document, start=start, account_timezone=Settings().account_timezone) as sim:
        sim.add_profiles(list(profiles(args.profiles, seed=args.seed)))
        event = _entry_event(document)
        if event is not None:  # every generated customer performs the entry event at the start
            sim.add_events([{"at": "+0m", "event": event, "profile": i} for i in range(args.profiles)])
        result = sim.run(until=until)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _entry_event(document: dict[str, Any]) -> str | None:
    """The event that starts journeys, when the entry node is an event entry."""
    from engine.core import registry
    from engine.core.graph import node_class

    for spec in document["nodes"]:
        cls = node_class(spec)
        if registry.has(cls, "event_entry") and cls is not None:
            return cls.starts_on(spec.get("settings", {}))
    return None


def _migrate(_args: argparse.Namespace) -> int:
    from engine.core import db
    from engine.core.config import Settings

    settings = Settings()
    db.upgrade(settings.database_url)
    print(f"database schema is current ({_safe_url(settings.database_url)})")
    return 0


def _check(args: argparse.Namespace) -> int:
    """One line per check (ok / problem and what to do); exit 1 when something is a problem."""
    from engine.core.config import Settings
    from engine.ops import check

    logging.getLogger("alembic").setLevel(logging.WARNING)  # only our lines, not Alembic's
    settings = Settings()
    workers = settings.expect_workers if args.workers is None else args.workers
    return check.run(settings, sys.stdout, min_workers=workers)


def _worker(_args: argparse.Namespace) -> int:
    from engine.ops import live, runtime

    rt = runtime.current()
    install_redaction(rt)
    _log_outbound_rule()  # workers run dispatch jobs too
    live.install_emitter(rt)  # stats of the chunks this worker commits reach every server's canvases
    cast("RQWakeups", rt.wakeups).schedule_sweep(timedelta(0))  # serve and worker run on RQ
    try:
        rt.worker().work(with_scheduler=True)
    finally:
        rt.close()
    return 0


def _dispatcher(args: argparse.Namespace) -> int:
    import time

    from engine.messaging.dispatcher import Dispatcher
    from engine.ops import runtime

    rt = runtime.current()
    install_redaction(rt)
    log = logging.getLogger("engine.messaging.dispatcher")
    log.info("dispatcher started (lease %ss)", rt.settings.dispatch_lease_seconds)
    _log_outbound_rule()
    next_sweep = 0.0
    while True:
        if time.monotonic() >= next_sweep:  # a second safety net, independent of RQ's scheduler
            _sweep_safely(rt, log)
            next_sweep = time.monotonic() + rt.settings.sweep_seconds
        stats = Dispatcher.from_runtime(rt).run()
        if stats.batches:
            log.info("dispatched: %s", stats.to_dict())
        else:
            time.sleep(args.poll)


def _sweep_safely(rt: Any, log: logging.Logger) -> None:
    """Dispatchers sweep too: the sweep job rides on RQ's scheduler, whose lock outlives a
    killed worker for a minute, and the sweeper is what re-asks for lost wakeups. Sweeping is
    idempotent, so several sweepers only repeat each other's harmless work."""
    try:
        rt.sweep()
    except Exception:  # a failed sweep must not stop the sending
        log.exception("sweep failed; sending goes on")


def _serve(args: argparse.Namespace) -> int:
    from engine.core import db
    from engine.ops import runtime

    rt = runtime.current()
    db.upgrade(rt.settings.database_url)
    install_redaction(rt)
    from engine.web.api.webhooks import warn_if_insecure
    from engine.web.app import create_app

    warn_if_insecure()
    _log_outbound_rule()

    app, socketio = create_app(rt)
    workers = rt.settings.serve_workers if args.workers is None else args.workers
    print(f"Campaign Canvas on http://{args.host}:{args.port}  (database {_safe_url(rt.settings.database_url)}, "
          f"{workers} worker{'s' if workers != 1 else ''})", flush=True)
    _print_demo_login(rt)
    if workers <= 0:
        _exit_on_sigterm()  # no RQ worker to turn SIGTERM into a shutdown: close the embedded Redis too
        try:
            socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True)
        finally:
            rt.close()
        return 0
    web = threading.Thread(target=socketio.run, args=(app,), daemon=True, name="web",
                           kwargs={"host": args.host, "port": args.port, "allow_unsafe_werkzeug": True,
                                   "use_reloader": False, "log_output": False})
    web.start()
    cast("RQWakeups", rt.wakeups).schedule_sweep(timedelta(0))  # serve and worker run on RQ
    helpers = [subprocess.Popen([sys.executable, "-m", "engine.cli", "worker"]) for _ in range(workers - 1)]
    try:
        rt.worker().work(with_scheduler=True)  # main thread: owns the signal handlers
    finally:
        _stop_children(helpers)
        rt.close()  # after the children: the embedded Redis they share goes last
    return 0


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _create_user(args: argparse.Namespace) -> int:
    import getpass
    import os

    from engine.core import db
    from engine.ops import auth

    password = args.password or os.environ.get("CC_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    with _store() as sessions, db.transaction(sessions) as session:
        user = auth.create_user(session, args.username, password, args.role)
        print(f"created {user.role} {user.username} (id {user.id})")
    return 0


def _create_api_key(args: argparse.Namespace) -> int:
    from engine.core import db
    from engine.ops import auth

    with _store() as sessions, db.transaction(sessions) as session:
        row, key = auth.create_api_key(session, args.name, args.role)
        print(f"created {row.role} API key {row.name!r} (prefix {row.prefix}); it is shown only now:", file=sys.stderr)
    print(key)
    return 0


@contextlib.contextmanager
def _store() -> Iterator[Any]:
    """Sessions on the configured database (migrated first), without starting Redis."""
    from engine.core import db
    from engine.core.config import Settings

    settings = Settings()
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    try:
        yield db.session_factory(engine)
    finally:
        engine.dispose()


def _demo(args: argparse.Namespace) -> int:
    from engine.core import db
    from engine.ops import runtime
    from engine.ops.demo import seed

    rt = runtime.current()
    db.upgrade(rt.settings.database_url)
    try:
        summary = seed(rt, profiles_count=args.profiles)
    finally:
        rt.close()  # the embedded Redis saves its queue to disk for `serve`
    print(json.dumps(summary, indent=2))
    return 0


def _exit_on_sigterm() -> None:
    import signal

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def _print_demo_login(rt: Any) -> None:
    from engine.ops.demo import saved_login

    if login := saved_login(rt):
        print(f"Log in as {login['username']} / {login['password']}  (demo credentials, kept in "
              f"{rt.settings.instance_dir}; change them with the users API)", flush=True)


def _import_profiles(args: argparse.Namespace) -> int:
    """Progress on stderr after every 1,000 rows, the finished import job as JSON on stdout;
    exit 1 when rows were refused, 2 when the import failed."""
    from engine.core import db
    from engine.journeys import imports
    from engine.ops import runtime

    rt = runtime.current()
    try:
        db.upgrade(rt.settings.database_url)
        return imports.import_file(rt.sessions, args.file, sys.stdout, sys.stderr)
    finally:
        rt.close()


def install_redaction(rt: Any) -> None:
    """Long-running processes mask every configured provider secret in their logs."""
    from engine.messaging.providers import install_redaction as install

    install(rt)


def _log_outbound_rule() -> None:
    """Processes that send say what outbound calls may reach, and do not start on a
    malformed CC_OUTBOUND_ALLOW (every send would fail)."""
    from engine.messaging import outbound

    logging.getLogger("engine.messaging.outbound").info(outbound.describe())


def _load_json(path: Path) -> Any:
    from engine.core import json_input
    from engine.core.errors import InvalidInput

    try:
        return json_input.loads(path.read_text(encoding="utf-8"))
    except InvalidInput as exc:  # JSON we do not take (too deep, NaN, text no database stores)
        detail = exc.details[0]
        where = f"at {detail['pointer']}, it" if detail["pointer"] else "it"
        raise SystemExit(f"error: {path} cannot be used: {where} {detail['message']}") from None
    except FileNotFoundError:
        raise SystemExit(f"error: {path} does not exist") from None
    except UnicodeDecodeError:
        raise SystemExit(f"error: {path} is not JSON: it is not UTF-8 text") from None
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {path} is not JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


COMMANDS = {"serve": _serve, "worker": _worker, "dispatcher": _dispatcher, "migrate": _migrate, "validate": _validate,
            "check": _check,
            "simulate": _simulate, "demo": _demo, "create-user": _create_user, "create-api-key": _create_api_key,
            "import-profiles": _import_profiles}

if __name__ == "__main__":
    sys.exit(main())
