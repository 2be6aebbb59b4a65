"""A dispatcher process killed with SIGKILL in the middle of a 5,000-message send, and
restarted: every message reaches the provider exactly once."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.core import clock
from engine.core.models import OutboxMessage
from engine.journeys import campaigns
from engine.messaging import providers
from tests.served import dispatch_until, kill_dispatchers_mid_send
from tests.standins import SendGridStandIn
from tests.support import add_profiles, doc, stats

pytestmark = [pytest.mark.processes, pytest.mark.chaos]

CLI = str(Path(sys.executable).parent / "campaign-canvas")
MESSAGES = 5000


def test_sigkilled_dispatcher_sends_every_message_exactly_once(harness, database_url, redis_url, chaos_report):
    virtual = clock.use(clock.SystemClock())  # the dispatcher process runs on the wall clock
    # each mail/send request is accepted, then answered 0.3 s later: a kill in that gap leaves a
    # batch the provider has but the dispatcher never recorded
    with SendGridStandIn(delay=0.3) as sendgrid:
        try:
            with harness.transaction() as s:
                providers.create_provider(s, {"channel": "email", "kind": "sendgrid", "name": "SendGrid",
                                              "settings": sendgrid.settings(activity_settle_seconds=0),
                                              "secrets": sendgrid.secrets()})
                add_profiles(s, MESSAGES)
                cid = campaigns.create(s, doc(
                    [("all", "select_segment", {"source": "all"}),
                     ("mail", "send_email", {"deliver_immediately": True,
                                             "content": {"subject": "Hi {{ profile.external_id }}", "text": "x"}})],
                    [("all", "out", "mail")])).id
                campaigns.launch(s, cid, clock.now())
                version_id = campaigns.get(s, cid).version_id
            harness.rt.executor.run(version_id, "all")  # the outbox holds 5,000 queued messages

            env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                   "CC_QUEUE": harness.rt.settings.queue_name, "CC_DISPATCH_LEASE_SECONDS": "2",
                   "CC_DISPATCH_CLAIM_LIMIT": "1000"}
            # start, let it get into the batches, SIGKILL; twice
            kill_dispatchers_mid_send(env, lambda: len(sendgrid.mail_requests), (0.8, 1.2))
            assert _count(harness, "sent") < MESSAGES, "killed mid-send"
            assert _count(harness, "sending") > 0, "a batch was at the provider when the dispatcher died"
            dispatch_until(env, lambda: _count(harness, "sent") == MESSAGES, "every message to be sent")

            per_message = Counter(int(d["custom_args"]["cc_outbox_id"]) for d in sendgrid.deliveries)
            chaos_report("emails from a dispatcher SIGKILLed twice mid-send", expected=MESSAGES,
                         distinct=len(per_message), duplicated=sum(n - 1 for n in per_message.values()),
                         lost=MESSAGES - len(per_message))
            assert len(per_message) == MESSAGES
            assert set(per_message.values()) == {1}, "no message reached the provider twice"
            assert max(sendgrid.batch_sizes) <= 1000

            harness.machine.run_due()  # the dispatcher woke the send node: customers move on
            assert stats(harness, cid)["mail"]["left"] == {"sent": MESSAGES}
        finally:
            clock.use(virtual)


def _count(h, status: str) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == status))

