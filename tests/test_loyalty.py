"""Accrue bonus points: the loyalty program (a stand-in: a real HTTP server on 127.0.0.1) gets
each accrual exactly once, on SQLite and PostgreSQL with a real Redis, including when the
dispatcher process is killed in the middle of a batch; the guide's chain "accrue bonus points
-> wait -> send message" tells customers about points that are already booked."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.core import clock
from engine.core.models import OutboxMessage
from engine.journeys import campaigns
from engine.messaging import providers
from tests.served import dispatch_until, kill_dispatchers_mid_send
from tests.standins import LoyaltyStandIn
from tests.support import (
    add_profiles,
    doc,
    email_provider,
    error_of,
    ok,
    positions,
    stats,
)

CLI = str(Path(sys.executable).parent / "campaign-canvas")
ALL = ("all", "select_segment", {"source": "all"})
ACCRUAL = {"amount": "{{ profile.attributes.tier_bonus }}", "expires_in": "30d", "legal_entity": "Acme SAS",
           "description": "Welcome bonus for {{ profile.attributes.first_name }}"}


@pytest.fixture
def loyalty():
    with LoyaltyStandIn() as stand_in:
        yield stand_in


def _program(h, stand_in: LoyaltyStandIn) -> None:
    with h.transaction() as s:
        providers.create_provider(s, {"channel": "loyalty", "kind": "loyalty_http", "name": "Loyalty",
                                      "settings": stand_in.settings(), "secrets": stand_in.secrets()})


def _people(h, count: int) -> list[int]:
    with h.transaction() as s:
        return add_profiles(s, count, attributes=lambda i: {"first_name": f"Ann{i}", "tier_bonus": 100 + i % 3})


def test_accrue_then_wait_then_send_books_each_accrual_once(harness, loyalty, sendgrid):
    h = harness
    _program(h, loyalty)
    email_provider(h, sendgrid)
    ids = _people(h, 30)
    with h.transaction() as s:
        cid = campaigns.create(s, doc(
            [ALL, ("bonus", "accrue_bonus_points", {"content": ACCRUAL}),
             ("wait", "wait", {"amount": 1, "unit": "days"}),
             ("mail", "send_email", {"deliver_immediately": True, "content": {
                 "subject": "{{ profile.points }} points for you", "text": "Your bonus is booked."}})],
            [("all", "out", "bonus"), ("bonus", "sent", "wait"), ("wait", "out", "mail")])).id
        campaigns.launch(s, cid, h.clock.now())
    h.machine.run_due()

    booked = loyalty.accruals
    assert len(booked) == 30 and set(loyalty.posts.values()) == {1}, "one call per customer, no repeat"
    first = next(a for a in booked if a["customer"] == "p0")
    assert first["amount"] == 100 and first["legal_entity"] == "Acme SAS"
    assert first["description"] == "Welcome bonus for Ann0"
    assert first["expires_at"] == "2026-12-31T08:00:00Z", "30 days after the accrual"
    assert sorted(a["amount"] for a in booked)[::10] == [100, 101, 102]
    assert positions(h, cid) == {("wait", "active"): 30}, "everyone accrued and now waits"
    assert sendgrid.deliveries == []

    h.machine.advance(timedelta(days=1, minutes=1))
    assert len(sendgrid.deliveries) == 30
    assert stats(h, cid)["bonus"]["left"] == {"sent": 30} and stats(h, cid)["mail"]["left"] == {"sent": 30}
    assert len(loyalty.accruals) == 30 and len(ids) == 30


def test_a_refused_accrual_fails_and_a_retried_one_is_booked_once(harness, loyalty):
    h = harness
    _program(h, loyalty)
    _people(h, 3)
    loyalty.fail_next(1, 503, accept=True)  # booked, but the answer says 503: retried with the same key
    loyalty.fail_next(1, 422, after=1)  # the program refuses the second customer for good
    with h.transaction() as s:
        cid = campaigns.create(s, doc([ALL, ("bonus", "accrue_bonus_points", {"content": {"amount": 5}})],
                                      [("all", "out", "bonus")])).id
        campaigns.launch(s, cid, h.clock.now())
    h.machine.run_due()
    h.machine.advance(timedelta(minutes=10))  # the retry's backoff
    assert stats(h, cid)["bonus"]["left"] == {"sent": 2, "failed": 1}
    assert len(loyalty.accruals) == 2, "the retried accrual is booked once: the key deduplicates it"


def test_accrual_settings_are_validated(api):
    document = doc([ALL, ("bonus", "accrue_bonus_points", {"content": {"amount": -5, "expires_in": "soon"}})],
                   [("all", "out", "bonus")])
    problems = ok(api.post("/api/campaigns/validate", json=document))["problems"]
    pointers = {p["pointer"] for p in problems}
    assert {"/nodes/1/settings/content/amount", "/nodes/1/settings/content/expires_in"} <= pointers
    error_of(api.post("/api/campaigns", json=document), 422, "invalid_document")


@pytest.mark.processes
@pytest.mark.chaos
def test_a_killed_dispatcher_books_every_accrual_exactly_once(harness, loyalty, database_url, redis_url,
                                                                chaos_report):
    h = harness
    count = 400
    virtual = clock.use(clock.SystemClock())  # the dispatcher process runs on the wall clock
    loyalty.delay = 0.02  # each accrual is booked, then answered 20 ms later: a kill in that gap
    try:
        _program(h, loyalty)
        _people(h, count)
        with h.transaction() as s:
            cid = campaigns.create(s, doc([ALL, ("bonus", "accrue_bonus_points", {"content": {"amount": 10}})],
                                          [("all", "out", "bonus")])).id
            campaigns.launch(s, cid, clock.now())
            version_id = campaigns.get(s, cid).version_id
        h.rt.executor.run(version_id, "all")  # the outbox holds 400 queued accruals

        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
               "CC_QUEUE": h.rt.settings.queue_name, "CC_DISPATCH_LEASE_SECONDS": "2"}
        kill_dispatchers_mid_send(env, lambda: len(loyalty.accruals), (0.5, 0.7))
        assert _count(h, "sent") < count, "killed mid-batch"
        assert _count(h, "sending") > 0, "a batch was with the program when the dispatcher died"
        dispatch_until(env, lambda: _count(h, "sent") == count, "every accrual to be booked")
        chaos_report("loyalty accruals from a dispatcher SIGKILLed twice mid-call", expected=count,
                     distinct=len(loyalty.posts), duplicated=sum(n - 1 for n in loyalty.posts.values()),
                     lost=count - len(loyalty.accruals))
        assert len(loyalty.accruals) == count
        assert set(loyalty.posts.values()) == {1}, "no accrual was even requested twice"
        h.machine.run_due()
        assert stats(h, cid)["bonus"]["left"] == {"sent": count}
    finally:
        clock.use(virtual)


def _count(h, status: str) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == status))
