"""Send throughput: messages/s from the outbox to a SendGrid stand-in on 127.0.0.1.

A campaign (everyone → send email with merge tags) fills the outbox; then one dispatcher
drains it: claim, render each message in the template sandbox, one mail/send request per
1,000 personalizations through the real SendGrid SDK, record. Only the draining is timed.

    python bench/send_throughput.py                          # SQLite, 10k and 100k
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test python bench/send_throughput.py

Prints one JSON object.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import datetime
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _runner import sized_main  # noqa: E402

CONTENT = {"subject": "Hello {{ profile.attributes.city }}",
           "html": "<h1>Hi {{ profile.external_id }}</h1><p>You have {{ profile.points }} points.</p>",
           "text": "Hi {{ profile.external_id }}, you have {{ profile.points }} points."}


def run_one(size: int, database_url: str) -> dict:
    import os

    from sqlalchemy import insert

    from engine.core import clock, db, registry
    from engine.core.budget import Budget
    from engine.core.executor import Executor
    from engine.core.models import Profile
    from engine.core.wakeups import LocalWakeups, bind
    from engine.journeys import campaigns
    from engine.journeys.generate import profiles
    from engine.messaging import providers
    from engine.messaging.dispatcher import Dispatcher
    from tests.standins import LOOPBACK_ALLOW, SendGridStandIn

    os.environ["CC_OUTBOUND_ALLOW"] = LOOPBACK_ALLOW  # the stand-in is on 127.0.0.1
    registry.load()
    database_url = database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='cc-bench-')) / 'bench.db'}"
    db.upgrade(database_url)
    sessions = db.session_factory(db.make_engine(database_url))
    bind(sessions, LocalWakeups())
    clock.use(clock.VirtualClock(datetime(2026, 12, 1, 10)))
    with SendGridStandIn() as sendgrid:
        with db.transaction(sessions) as session:
            providers.create_provider(session, {"channel": "email", "kind": "sendgrid", "name": "bench",
                                                "settings": sendgrid.settings(), "secrets": sendgrid.secrets()})
            generated = profiles(size)
            while rows := list(islice(generated, 5000)):
                session.execute(insert(Profile), rows)
            campaign = campaigns.create(session, {
                "name": "Send benchmark", "edges": [{"id": "e", "source": "all", "target": "mail"}],
                "nodes": [{"id": "all", "type": "select_segment", "settings": {"source": "all"}},
                          {"id": "mail", "type": "send_email",
                           "settings": {"content": CONTENT, "deliver_immediately": True}}]})
            campaigns.launch(session, campaign.id, clock.now())
            version_id = campaign.version_id
        fill_start = time.perf_counter()
        Executor(sessions).run(version_id, "all", Budget.unlimited())  # the whole outbox, not one job's share
        fill_seconds = time.perf_counter() - fill_start
        start = time.perf_counter()
        stats = Dispatcher(sessions, providers.resolve).run()
        seconds = time.perf_counter() - start
        return {
            "messages": size,
            "database": database_url.split(":", 1)[0],
            "seconds": round(seconds, 2),
            "messages_per_second": round(size / seconds),
            "outbox_fill_seconds": round(fill_seconds, 2),
            "sent": stats.sent,
            "provider_requests": len(sendgrid.mail_requests),
            "largest_request": max(sendgrid.batch_sizes),
            "delivered_at_stand_in": len(sendgrid.deliveries),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def main() -> None:
    sized_main(__file__, __doc__, "send_throughput", lambda size, args: run_one(size, args.database_url),
               lambda _args: {"provider": "SendGrid SDK -> stand-in on 127.0.0.1"})


if __name__ == "__main__":
    main()
