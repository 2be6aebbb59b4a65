"""The web app for production WSGI servers, built from the environment (engine/core/config.py).

    campaign-canvas migrate        # once per release, before starting servers: schema upgrades
                                   # are never run by a server process
    gunicorn --worker-class gthread --workers 1 --threads 100 --bind 0.0.0.0:8000 engine.web.wsgi:app

One gunicorn process (`--workers 1`) per port: Socket.IO's long-polling transport needs every
request of a client to reach the same process, which gunicorn's own balancing cannot promise.
For more capacity run several such processes (any machines) behind a proxy with sticky
sessions; they share live updates through the Redis message queue (engine/ops/live.py). Threads
(not gevent/eventlet) because nothing is monkey-patched: psycopg, SQLAlchemy's pool, redis-py
and RQ run as they do in tests. Each open WebSocket holds one thread: size `--threads` for the
canvases open at once plus API traffic. Workers (`campaign-canvas worker`) and dispatchers
run as processes of their own.
"""

from __future__ import annotations

import logging

from engine.core import db
from engine.messaging import outbound
from engine.messaging.providers import install_redaction
from engine.ops import runtime
from engine.web.api.webhooks import warn_if_insecure
from engine.web.app import create_app


def _require_current_schema(rt: runtime.Runtime) -> None:
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(db.alembic_config(rt.settings.database_url)).get_heads())
    current = db.current_revision(rt.engine)
    if current not in heads:
        raise RuntimeError(f"the database schema is at {current or 'nothing'}, not {', '.join(sorted(heads))}: "
                           "run `campaign-canvas migrate` with the same DATABASE_URL first")


rt = runtime.current()
_require_current_schema(rt)
install_redaction(rt)
warn_if_insecure()
logging.getLogger("engine.messaging.outbound").info(outbound.describe())
app, socketio = create_app(rt)
