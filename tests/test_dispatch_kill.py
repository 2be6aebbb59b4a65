"""A dispatcher process killed with SIGKILL in the middle of a 5,000-message send, and
restarted: every message reaches the provider exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from engine import campaigns, clock, providers
from engine.models import OutboxMessage
from tests.served import wait_for
from tests.standins import SendGridStandIn
from tests.support import add_profiles, doc, stats

CLI = str(Path(sys.executable).parent / "campaign-canvas")
MESSAGES = 5000


def test_sigkilled_dispatcher_sends_every_message_exactly_once(harness, database_url, redis_url):
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
            for kills, pause in enumerate((0.8, 1.2)):  # start, let it get into the batches, SIGKILL
                process = subprocess.Popen([CLI, "dispatcher", "--poll", "0.2"], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(lambda k=kills: len(sendgrid.mail_requests) > k, timeout=30, what="the dispatcher to start sending")
                time.sleep(pause)
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
            assert _count(harness, "sent") < MESSAGES, "killed mid-send"
            assert _count(harness, "sending") > 0, "a batch was at the provider when the dispatcher died"

            process = subprocess.Popen([CLI, "dispatcher", "--poll", "0.2"], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                wait_for(lambda: _count(harness, "sent") == MESSAGES, timeout=90, what="every message to be sent")
            finally:
                process.terminate()
                output, _ = process.communicate(timeout=20)
            assert "Traceback" not in output, output

            per_message = Counter(int(d["custom_args"]["cc_outbox_id"]) for d in sendgrid.deliveries)
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

