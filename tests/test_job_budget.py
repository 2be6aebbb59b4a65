"""Every job works within a time budget (CC_JOB_BUDGET_SECONDS) under an explicit RQ timeout
(CC_JOB_TIMEOUT_SECONDS) and hands the rest to a fresh job; a job killed anyway, at its
timeout or with its worker, loses nobody and sends nothing twice.

At a million customers RQ's default 180 s timeout killed one wake job (200 chunks of 5,000)
with 955,000 of them entered, and one dispatch job (the whole outbox) with 720,000 of 754,132
emails sent, 5,000 left `sending` and 29,132 `queued` with nobody to send them."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import func, select

from engine.core import clock
from engine.core.models import OutboxMessage, Profile, Segment
from engine.journeys import campaigns
from engine.messaging import providers
from tests.conftest import harness_on
from tests.served import CLI, stop, wait_for
from tests.standins import SendGridStandIn, TwilioStandIn
from tests.support import add_profiles, doc, points, positions, stats

CUSTOMERS = 1000
CHUNK = 50
CLAIM = 200


def reference_campaign() -> dict:
    """trigger → filter → A/B test → email → wait 2 days → check email status → SMS to
    whoever did not open (with no delivery webhooks: everyone)."""
    return doc(
        [("all", "select_segment", {"source": "all"}),
         ("paying", "filter", {"rules": {"match": "all", "rules": [
             {"field": "attributes.plan", "op": "in", "value": ["free", "pro"]}]}}),
         ("ab", "ab_test", {"variants": [{"id": "a"}, {"id": "b"}], "test_size": 100, "metric": "opens",
                            "evaluation_period": "1d"}),
         ("mail", "send_email", {"deliver_immediately": True,
                                 "content": {"subject": "Hi {{ profile.external_id }}", "text": "Our news"}}),
         ("wait", "wait", {"amount": 2, "unit": "days"}),
         ("check", "check_email_status", {"email_node": "mail"}),
         ("sms", "send_sms", {"deliver_immediately": True, "content": {"body": "Did you see our email?"}})],
        [("all", "out", "paying"), ("paying", "yes", "ab"), ("ab", "a", "mail"), ("ab", "b", "mail"),
         ("mail", "sent", "wait"), ("wait", "out", "check"), ("check", "not_delivered", "sms"),
         ("check", "delivered_not_opened", "sms")], name="Reference")


@pytest.fixture
def hurried(database_url, redis_conn, engine):
    """A runtime whose jobs hand over after one unit of work (a chunk of 50 customers, one
    provider batch of at most 200 messages) and are killed past 5 seconds."""
    with harness_on(database_url, redis_conn, chunk_size=CHUNK, job_budget_seconds=0.0, job_timeout_seconds=5,
                    dispatch_claim_limit=CLAIM) as h:
        yield h


def test_jobs_of_one_chunk_each_still_move_everyone_exactly_once(hurried):
    h = hurried
    with SendGridStandIn() as sendgrid, TwilioStandIn() as twilio:
        with h.transaction() as s:
            providers.create_provider(s, {"channel": "email", "kind": "sendgrid", "name": "SendGrid",
                                          "settings": sendgrid.settings(), "secrets": sendgrid.secrets()})
            providers.create_provider(s, {"channel": "sms", "kind": "twilio", "name": "Twilio",
                                          "settings": twilio.settings(), "secrets": twilio.secrets()})
            add_profiles(s, CUSTOMERS, phone=lambda i: f"+1555{i:07d}",
                         attributes=lambda i: {"plan": ("free", "pro", "business")[i % 3]})
            cid = campaigns.create(s, reference_campaign()).id
            campaigns.launch(s, cid, h.clock.now())
        h.machine.run_until_idle()

        paying = 667  # i % 3 in (0, 1) of 1,000
        st = stats(h, cid)
        assert st["paying"]["left"] == {"yes": paying, "no": CUSTOMERS - paying}
        assert sum(st["ab"]["left"].values()) == paying
        assert st["mail"]["left"] == {"sent": paying}
        assert st["check"]["left"] == {"not_delivered": paying}
        assert st["sms"]["left"] == {"sent": paying}
        assert positions(h, cid) == {("paying", "done"): CUSTOMERS - paying, ("sms", "done"): paying}
        emails = Counter(int(d["custom_args"]["cc_outbox_id"]) for d in sendgrid.deliveries)
        assert (len(emails), set(emails.values())) == (paying, {1}), "every email once"
        texts = Counter(m["to"] for m in twilio.messages)
        assert (len(texts), set(texts.values())) == (paying, {1}), "every SMS once"
        assert max(sendgrid.batch_sizes) <= CLAIM

    # and no job did more than one unit of work: everything else was handed over
    done: dict[str, list] = {}
    for name, result in h.machine.results:
        done.setdefault(name.rsplit(".", 1)[-1], []).append(result)
    woken = done["wake"] + done.get("wake_helper", [])  # helpers share backlogs on PostgreSQL
    assert max(woken) == CHUNK
    # each customer claimed once where they were held: entering, after the A/B test's day (all
    # but the test's 100), after their email, after the wait, after their SMS
    assert sum(woken) == CUSTOMERS + (paying - 100) + 3 * paying
    assert max(r["batches"] for r in done["dispatch"]) == 1
    assert sum(r["sent"] for r in done["dispatch"]) == 2 * paying
    assert any(r["handed_over"] for r in done["dispatch"])


def test_a_segment_refresh_out_of_budget_hands_the_next_segments_to_a_fresh_job(hurried):
    h = hurried
    with h.transaction() as s:
        ids = add_profiles(s, 6, attributes={"tier": "bronze"})
        segment_ids = []
        for tier in ("gold", "silver"):
            segment = Segment(name=tier, rules={"match": "all", "rules": [
                {"field": "attributes.tier", "op": "eq", "value": tier}]})
            s.add(segment)
            s.flush()
            segment_ids.append(segment.id)
        cids = []
        for segment_id in segment_ids:
            cid = campaigns.create(s, doc([("t", "segment_entry", {"segment_id": segment_id}),
                                           ("pts", "award_points", {"points": 1})], [("t", "out", "pts")])).id
            campaigns.launch(s, cid, h.clock.now())
            cids.append(cid)
    with h.transaction() as s:  # two join gold, three silver; the 5-minute refresh finds them
        for n, pid in enumerate(ids[:5]):
            s.get(Profile, pid).attributes = {"tier": "gold" if n < 2 else "silver"}
    h.machine.advance(timedelta(minutes=5))

    refreshes = [result for name, result in h.machine.results if name.endswith("refresh_segments")]
    assert refreshes == [{segment_ids[0]: 2}, {segment_ids[1]: 3}], "one segment per job, the second handed over"
    assert [positions(h, cid) for cid in cids] == [{("pts", "done"): 2}, {("pts", "done"): 3}]


# --------------------------------------------------------------------------- killed jobs, real workers

MESSAGES = 3000


def _worker(env: dict[str, str]) -> subprocess.Popen:
    """A real `campaign-canvas worker` in a process group of its own (its forked work horses
    die with it)."""
    return subprocess.Popen([CLI, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _count(h, status: str) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == status))


def _mail_campaign(h, sendgrid) -> int:
    """MESSAGES customers, an email each (through the stand-in), then a point for each sent."""
    with h.transaction() as s:
        providers.create_provider(s, {"channel": "email", "kind": "sendgrid", "name": "SendGrid",
                                      "settings": sendgrid.settings(activity_settle_seconds=0),
                                      "secrets": sendgrid.secrets()})
        add_profiles(s, MESSAGES)
        cid = campaigns.create(s, doc(
            [("all", "select_segment", {"source": "all"}),
             ("mail", "send_email", {"deliver_immediately": True, "content": {"subject": "Hi", "text": "x"}}),
             ("pts", "award_points", {"points": 1})],
            [("all", "out", "mail"), ("mail", "sent", "pts")])).id
        campaigns.launch(s, cid, clock.now())
    return cid


def _everyone_once(h, cid: int, sendgrid) -> None:
    wait_for(lambda: positions(h, cid) == {("pts", "done"): MESSAGES}, timeout=90, what="everyone to get through")
    per_message = Counter(int(d["custom_args"]["cc_outbox_id"]) for d in sendgrid.deliveries)
    assert (len(per_message), set(per_message.values())) == (MESSAGES, {1}), "every message once, none twice"
    assert _count(h, "sent") == MESSAGES
    assert set(points(h).values()) == {1}


def _env(h, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_QUEUE": h.rt.settings.queue_name,
            "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "1", "CC_DISPATCH_LEASE_SECONDS": "3",
            "CC_DISPATCH_CLAIM_LIMIT": "1000", **extra}


@pytest.mark.processes
def test_a_dispatch_job_killed_at_its_timeout_loses_no_message_and_sends_none_twice(harness, database_url,
                                                                                   redis_url):
    h = harness
    virtual = clock.use(clock.SystemClock())  # the worker runs on the wall clock
    # SendGrid takes each batch, then answers 4 s later: past the job's 2-second timeout
    with SendGridStandIn(delay=4) as sendgrid:
        worker = _worker(_env(h, database_url, redis_url, CC_JOB_BUDGET_SECONDS="0.5", CC_JOB_TIMEOUT_SECONDS="2"))
        try:
            cid = _mail_campaign(h, sendgrid)

            def killed() -> list[str]:
                jobs = Job.fetch_many(h.rt.queue.failed_job_registry.get_job_ids(), connection=h.rt.redis)
                return [j.id for j in jobs if j is not None and "JobOutOfTime" in (j.latest_result().exc_string or "")]

            first_killed = wait_for(killed, timeout=60, what="a dispatch job killed at its timeout")[0]
            assert first_killed.startswith("cc-dispatch")
            assert _count(h, "sending") > 0, "the batch the provider took was left `sending`"
            sendgrid.delay = 0  # the provider answers again: recovery and the rest go through
            _everyone_once(h, cid, sendgrid)
        finally:
            clock.use(virtual)
            output = stop(worker)
    assert "JobOutOfTime" in output


@pytest.mark.processes
def test_a_worker_killed_mid_dispatch_loses_no_message_and_sends_none_twice(harness, database_url, redis_url):
    h = harness
    virtual = clock.use(clock.SystemClock())
    with SendGridStandIn(delay=2) as sendgrid:
        env = _env(h, database_url, redis_url)
        worker = _worker(env)
        try:
            cid = _mail_campaign(h, sendgrid)
            wait_for(lambda: sendgrid.mail_requests, timeout=60, what="the dispatch job to call SendGrid")
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse, mid-call
            worker.wait()
            assert _count(h, "sent") == 0 and _count(h, "sending") > 0 and _count(h, "queued") > 0
            sendgrid.delay = 0
            worker = _worker(env)  # a worker again: its sweeper finds the stranded and the queued
            _everyone_once(h, cid, sendgrid)
        finally:
            clock.use(virtual)
            stop(worker)
