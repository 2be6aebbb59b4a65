"""Scale-out under chaos: 4 `campaign-canvas worker` and 2 `campaign-canvas dispatcher`
processes on one PostgreSQL and one Redis run a 20,000-customer campaign while a random one
of them is SIGKILLed (with its RQ work horse: the whole process group) every 200-500 ms and
restarted. Whatever got killed, nothing is done twice and nobody is left behind:

- every journey ends `done` at the last node;
- the SendGrid stand-in accepted exactly one message per customer (none `uncertain`);
- the node counters equal the ground truth read from positions, the outbox and profiles;
- the points after the send were awarded exactly once per customer.

PostgreSQL only: concurrent workers on SQLite just queue for its single write lock.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from engine.core import clock, db
from engine.core.models import Enrollment, OutboxMessage, Profile
from engine.journeys import campaigns
from engine.messaging import providers
from engine.ops.runtime import Runtime
from tests.served import free_port, wait_for
from tests.standins import SendGridStandIn
from tests.support import add_profiles, doc, positions, stats

pytestmark = [pytest.mark.processes, pytest.mark.chaos]

CLI = str(Path(sys.executable).parent / "campaign-canvas")
CUSTOMERS = 20_000
WORKERS, DISPATCHERS = 4, 2
CHAOS_SECONDS = 25.0
POINTS = 7

CAMPAIGN = doc(
    [("all", "select_segment", {"source": "all"}),
     ("w", "wait", {"amount": 0.05, "unit": "minutes"}),  # 3 s: released by RQ's scheduler
     ("mail", "send_email", {"deliver_immediately": True,
                             "content": {"subject": "Hi {{ profile.external_id }}", "text": "x"}}),
     ("pts", "award_points", {"points": POINTS})],
    [("all", "out", "w"), ("w", "out", "mail"), ("mail", "sent", "pts")],
    name="Scale-out under chaos")


class Fleet:
    """The worker and dispatcher processes, each in a process group of its own (a worker's
    RQ work horse dies with it, as when a machine goes away), logging to files."""

    def __init__(self, env: dict[str, str], logs: Path, workers: int = WORKERS, dispatchers: int = DISPATCHERS):
        self.env, self.logs = env, logs
        self.slots: list[tuple[str, subprocess.Popen | None]] = [("worker", None)] * workers + \
            [("dispatcher", None)] * dispatchers
        self.started = self.restarted = 0
        self.kills: Counter[str] = Counter()

    def start_all(self) -> None:
        for slot in range(len(self.slots)):
            self._start(slot)

    def _start(self, slot: int) -> None:
        kind, _ = self.slots[slot]
        self.started += 1
        log = open(self.logs / f"{self.started:04d}-{kind}.log", "w")  # noqa: SIM115 - closed by the child
        args = [CLI, "worker"] if kind == "worker" else [CLI, "dispatcher", "--poll", "0.2"]
        process = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.slots[slot] = (kind, process)

    def kill_and_restart(self, slot: int) -> None:
        kind, process = self.slots[slot]
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.kills[kind] += 1
        self._start(slot)

    def supervised(self, predicate: Any) -> Any:
        """`predicate`, first starting again every process that exited by itself (as a
        supervisor such as systemd's Restart=always would): for wait_for."""
        def check() -> Any:
            for slot, (_, process) in enumerate(self.slots):
                if process is not None and process.poll() is not None:
                    self.restarted += 1
                    self._start(slot)
            return predicate()
        return check

    def stop(self) -> None:
        for _, process in self.slots:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # RQ: warm shutdown; dispatcher: KeyboardInterrupt-free exit
        deadline = time.monotonic() + 15
        for _, process in self.slots:
            if process is None:
                continue
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def tracebacks(self) -> list[str]:
        found = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace")
            if "Traceback" in text:
                found.append(f"--- {path.name} ---\n{text[text.index('Traceback') - 2000:][:6000]}")
        return found


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_workers_and_dispatchers_killed_at_random_do_everything_exactly_once(harness, database_url, redis_url,
                                                                               tmp_path, chaos_report):
    seed = int(os.environ.get("CC_CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
    chaos = random.Random(seed)
    virtual = clock.use(clock.SystemClock())  # the processes run on the wall clock
    # mail/send accepts, then answers 0.3 s later: a kill in that gap leaves a batch the
    # provider has and the dispatcher never recorded; recovery must find it via Email Activity
    with SendGridStandIn(delay=0.3) as sendgrid:
        fleet = None
        try:
            t0 = time.monotonic()
            with harness.transaction() as s:
                providers.create_provider(s, {"channel": "email", "kind": "sendgrid", "name": "SendGrid",
                                              "settings": sendgrid.settings(activity_settle_seconds=0, timeout=10),
                                              "secrets": sendgrid.secrets()})
                add_profiles(s, CUSTOMERS)
            with harness.transaction() as s:
                cid = campaigns.create(s, CAMPAIGN).id
                assert campaigns.launch(s, cid, clock.now()) == CUSTOMERS
            setup_seconds = time.monotonic() - t0

            env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                   "CC_QUEUE": harness.rt.settings.queue_name, "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2",
                   "CC_CHUNK_SIZE": "500", "CC_DISPATCH_CLAIM_LIMIT": "1000",
                   # longer than a batch takes (render + one 0.3 s call), short enough to recover here
                   "CC_DISPATCH_LEASE_SECONDS": "5"}
            logs = tmp_path / "logs"
            logs.mkdir()
            fleet = Fleet(env, logs)
            fleet.start_all()
            # the chaos starts as the wait releases customers into the send: kills then land in
            # executor chunks, provider calls, recording and the moves after `sent` (killing the
            # scheduler's worker before the wait's release only stalls everything for its lock)
            wait_for(lambda: sum(_outbox(harness).values()) > 0, timeout=60, what="the wait to release customers")
            t1 = time.monotonic()
            at_chaos_start = _outbox(harness)
            while time.monotonic() - t1 < CHAOS_SECONDS:
                time.sleep(chaos.uniform(0.2, 0.5))
                fleet.kill_and_restart(chaos.randrange(len(fleet.slots)))
            chaos_seconds = time.monotonic() - t1
            at_chaos_end, at_chaos_end_outbox = positions(harness, cid), _outbox(harness)

            t2 = time.monotonic()
            deadline = t2 + 150
            while positions(harness, cid) != {("pts", "done"): CUSTOMERS}:
                if time.monotonic() > deadline:
                    fleet.stop()
                    raise AssertionError(f"not finished: {positions(harness, cid)}; outbox {_outbox(harness)}\n"
                                         + "\n".join(fleet.tracebacks()[:3]))
                time.sleep(0.5)
            settle_seconds = time.monotonic() - t2
            fleet.stop()

            with harness.session() as s:
                attempts = Counter(s.scalars(select(OutboxMessage.attempts)))
            print(f"\nchaos seed {seed}: {sum(fleet.kills.values())} SIGKILLs ({dict(fleet.kills)}), "
                  f"{fleet.started} processes started; setup {setup_seconds:.1f}s, chaos {chaos_seconds:.1f}s, "
                  f"finish after chaos {settle_seconds:.1f}s; outbox when chaos started {at_chaos_start}; "
                  f"positions when chaos ended {at_chaos_end}, outbox {at_chaos_end_outbox}; "
                  f"outbox attempts {dict(attempts)}; mail/send requests {len(sendgrid.mail_requests)}, "
                  f"batch sizes {Counter(sendgrid.batch_sizes)}")

            # the provider: one message per customer, none twice
            deliveries = sendgrid.deliveries
            per_recipient = Counter(d["to"] for d in deliveries)
            per_message = Counter(int(d["custom_args"]["cc_outbox_id"]) for d in deliveries)
            twice = {k: n for k, n in per_recipient.items() if n > 1}
            chaos_report("emails while workers and dispatchers are SIGKILLed at random", expected=CUSTOMERS,
                         distinct=len(per_recipient), duplicated=sum(n - 1 for n in per_recipient.values()),
                         lost=CUSTOMERS - len(per_recipient), sigkills=sum(fleet.kills.values()), seed=seed)
            assert not twice, f"{len(twice)} customers got the email more than once, e.g. {list(twice.items())[:5]}"
            assert len(per_recipient) == CUSTOMERS
            assert set(per_message.values()) == {1} and len(per_message) == CUSTOMERS
            assert max(sendgrid.batch_sizes) <= 1000

            # the outbox: one row per customer, every one confirmed sent (none uncertain, none failed)
            assert _outbox(harness) == {"sent": CUSTOMERS}
            with harness.session() as s:
                outbox_ids = set(s.scalars(select(OutboxMessage.id)))
                recipients = set(s.scalars(select(OutboxMessage.to_address)))
                assert s.scalar(select(func.count(func.distinct(OutboxMessage.enrollment_id)))) == CUSTOMERS
                # points: awarded exactly once per customer, after the send
                assert Counter(s.scalars(select(Profile.points))) == {POINTS: CUSTOMERS}
                done_at_pts = s.scalar(select(func.count()).select_from(Enrollment).where(
                    Enrollment.campaign_id == cid, Enrollment.node_id == "pts", Enrollment.state == "done"))
            assert set(per_message) == outbox_ids and set(per_recipient) == recipients

            # counters, written in the same transactions as the moves, equal the ground truth
            nodes = stats(harness, cid)
            assert nodes == {
                "all": {"entered": CUSTOMERS, "waiting": 0, "left": {"out": CUSTOMERS}},
                "w": {"entered": CUSTOMERS, "waiting": 0, "left": {"out": CUSTOMERS}},
                "mail": {"entered": CUSTOMERS, "waiting": 0, "left": {"sent": CUSTOMERS}},
                "pts": {"entered": done_at_pts, "waiting": 0, "left": {"out": done_at_pts}},
            }, nodes
            assert done_at_pts == CUSTOMERS

            problems = fleet.tracebacks()
            assert not problems, "\n".join(problems[:3])
        finally:
            if fleet is not None:
                fleet.stop()
            clock.use(virtual)


def _outbox(h) -> dict[str, int]:
    with h.session() as s:
        return dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())



class PrivateRedis:
    """A redis-server of this test's own on a free port (no persistence, like the machine's):
    killed with SIGKILL and started again empty, which a shared server must never be."""

    def __init__(self, workdir: Path):
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed: this test kills and restarts a Redis of its own")
        self.port, self.workdir, self.process = free_port(), workdir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, what="the private Redis to answer")

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url).ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_redis_killed_and_flushed_mid_campaign_loses_nobody_and_sends_nothing_twice(
        harness, database_url, tmp_path, chaos_report):
    """Workers and a dispatcher on a Redis that is SIGKILLed (and comes back empty) while
    customers wait and are being sent to, then flushed: the database positions are the truth,
    the sweepers ask again for every lost wakeup, and every customer gets one email."""
    customers = 5000
    private = PrivateRedis(tmp_path)
    private.start()
    virtual = clock.use(clock.SystemClock())
    with SendGridStandIn(delay=0.1) as sendgrid:
        fleet = None
        try:
            with harness.transaction() as s:
                providers.create_provider(s, {"channel": "email", "kind": "sendgrid", "name": "SendGrid",
                                              "settings": sendgrid.settings(activity_settle_seconds=0, timeout=10),
                                              "secrets": sendgrid.secrets()})
                add_profiles(s, customers)
            env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": private.url,
                   "CC_QUEUE": harness.rt.settings.queue_name, "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2",
                   "CC_CHUNK_SIZE": "500", "CC_DISPATCH_CLAIM_LIMIT": "500", "CC_DISPATCH_LEASE_SECONDS": "5"}
            logs = tmp_path / "logs"
            logs.mkdir()
            fleet = Fleet(env, logs, workers=2, dispatchers=1)
            fleet.start_all()
            with harness.transaction() as s:  # launched by this process; the wakeup is in the private Redis
                cid = campaigns.create(s, CAMPAIGN).id
            launcher = Runtime(replace(harness.rt.settings, redis_url=private.url))
            with db.transaction(launcher.sessions) as s:
                assert campaigns.launch(s, cid, clock.now()) == customers
            launcher.close()

            supervised = fleet.supervised  # a process that dies with Redis is restarted, as systemd would
            wait_for(supervised(lambda: sum(_outbox(harness).values()) > 0), timeout=60, what="the first emails")
            private.kill()  # every scheduled and queued job, the workers' registrations: gone
            time.sleep(2)
            private.start()
            wait_for(supervised(lambda: _outbox(harness).get("sent", 0) > customers // 2), timeout=90,
                     what="half the emails")
            redis.Redis.from_url(private.url).flushall()
            wait_for(supervised(lambda: positions(harness, cid) == {("pts", "done"): customers}), timeout=150,
                     what="everyone to finish")
        finally:
            if fleet is not None:
                fleet.stop()
            clock.use(virtual)
            if private.process is not None and private.process.poll() is None:
                private.kill()
        per_recipient = Counter(d["to"] for d in sendgrid.deliveries)
    chaos_report("emails across a Redis SIGKILL, restart and FLUSHALL", expected=customers,
                 distinct=len(per_recipient), duplicated=sum(n - 1 for n in per_recipient.values()),
                 lost=customers - len(per_recipient), processes_restarted=fleet.restarted)
    assert len(per_recipient) == customers and set(per_recipient.values()) == {1}
    assert _outbox(harness) == {"sent": customers}
    with harness.session() as s:
        assert Counter(s.scalars(select(Profile.points))) == {POINTS: customers}
