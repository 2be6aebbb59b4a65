"""The outbox dispatcher: sends queued messages in provider-sized batches, exactly once.

For each batch, three steps, each its own transaction:
1. claim: due `queued` rows become `sending` with a batch key and a lease, committed
   *before* the provider is called (so a crash can be noticed and reconciled);
2. send: render each message and make one provider call for the batch;
3. record: `sent` / `failed` (final) / back to `queued` with backoff (transient), and make the
   customers due again at their send node, which then routes them.

A dispatcher that dies between 1 and 3 leaves `sending` rows whose lease runs out. Recovery
asks the provider which messages of that batch it accepted: those are `sent`, the rest are
queued again (they never left). A provider that cannot tell gets `uncertain`, never a resend:
a duplicate message is the worse failure. Concurrent dispatchers claim disjoint rows
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, TextClause, bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from engine.core import clock, db, wakeups
from engine.core.batch import id_chunks
from engine.core.budget import Budget
from engine.core.errors import CampaignCanvasError
from engine.core.merge import load_contexts, renderer_for
from engine.core.models import CampaignVersion, Enrollment, OutboxMessage
from engine.messaging.channels import (
    OutgoingMessage,
    Provider,
    SendResult,
    TransientError,
)
from engine.messaging.outbound import OutboundRefused

log = logging.getLogger(__name__)

QUEUED = text("outbox.status = 'queued'")
#: how soon recovery asks a provider again while its answer may still be incomplete
RECHECK = timedelta(minutes=1)
SENDING = text("outbox.status = 'sending'")

#: resolve (session, provider config id or None, channel) to a provider, or None if there is none
ProviderResolver = Callable[[Session, int | None, str], Provider | None]


@dataclass
class DispatchStats:
    batches: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    recovered_sent: int = 0
    requeued: int = 0
    uncertain: int = 0
    #: answers that did not say whether the provider took the message (left to recovery)
    unsettled: int = 0
    #: claimed, then put back unsent when the budget ran out
    released: int = 0
    #: the budget ran out with work left: a fresh dispatch job goes on
    handed_over: bool = False

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass
class _Claimed:
    provider: Provider
    batch_key: str
    rows: list[Any] = field(default_factory=list)


def _backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at 1 hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


class Dispatcher:
    def __init__(self, sessions: sessionmaker[Session], resolve: ProviderResolver, *, claim_limit: int = 5000,
                 lease: timedelta = timedelta(minutes=5), max_attempts: int = 8):
        self.sessions = sessions
        self.resolve = resolve
        self.claim_limit = claim_limit
        self.lease = lease
        self.max_attempts = max_attempts
        self.stats = DispatchStats()

    @classmethod
    def from_runtime(cls, rt: Any) -> Dispatcher:
        from engine.messaging.providers import resolve

        return cls(rt.sessions, resolve, claim_limit=rt.settings.dispatch_claim_limit,
                   lease=timedelta(seconds=rt.settings.dispatch_lease_seconds))

    def run(self, *, max_batches: int | None = None, budget: Budget | None = None) -> DispatchStats:
        """Recover expired batches, then send until nothing is due (or `max_batches`, or the
        `budget` is spent: then claimed batches not sent yet go back to the queue untouched,
        and a fresh dispatch job is asked for). At least one provider batch is sent."""
        budget = budget or Budget.unlimited()
        self.recover(budget)
        while max_batches is None or self.stats.batches < max_batches:
            if self.stats.batches and budget.spent():
                self._hand_over()
                break
            claimed = self.claim()
            if not claimed:
                break
            for n, batch in enumerate(claimed):
                if n and budget.spent():
                    self.release(claimed[n:])
                    self._hand_over()
                    return self.stats
                self.send(batch)
        return self.stats

    def _hand_over(self) -> None:
        self.stats.handed_over = True
        with db.transaction(self.sessions) as session:
            wakeups.request_dispatch(session, clock.now())

    # -- 1. claim ------------------------------------------------------------------------
    def claim(self) -> list[_Claimed]:
        now = clock.now()
        o = OutboxMessage
        with db.transaction(self.sessions) as session:
            rows = session.execute(
                select(o.id, o.provider_id, o.channel, o.campaign_id, o.version_id, o.node_id, o.enrollment_id,
                       o.profile_id, o.to_address, o.attempts)
                .where(QUEUED, o.next_attempt_at <= now).order_by(o.next_attempt_at).limit(self.claim_limit)
                .with_for_update(skip_locked=True)
            ).all()
            groups: dict[tuple[int | None, str], list[Any]] = defaultdict(list)
            for row in rows:
                groups[(row.provider_id, row.channel)].append(row)
            claimed: list[_Claimed] = []
            for (provider_id, channel), members in groups.items():
                provider = self.resolve(session, provider_id, channel)
                if provider is None:
                    self._finish(session, members, "failed", now, error=f"no {channel} provider is configured")
                    continue
                for start in range(0, len(members), provider.max_batch):
                    batch = _Claimed(provider, uuid.uuid4().hex, members[start : start + provider.max_batch])
                    for chosen in id_chunks(session, o.id, [r.id for r in batch.rows]):
                        session.execute(update(o).where(chosen).values(
                            status="sending", batch_key=batch.batch_key, lease_until=now + self.lease,
                            claimed_at=now, attempts=o.attempts + 1), execution_options={"synchronize_session": False})
                    claimed.append(batch)
        return claimed

    def release(self, batches: list[_Claimed]) -> None:
        """Claimed batches this run will not send: back to `queued` as they were, before any
        provider saw them (so the claim's attempt does not count)."""
        o = OutboxMessage
        with db.transaction(self.sessions) as session:
            for batch in batches:
                for chosen in id_chunks(session, o.id, [r.id for r in batch.rows]):
                    session.execute(update(o).where(chosen, o.batch_key == batch.batch_key, SENDING).values(
                        status="queued", batch_key=None, lease_until=None, claimed_at=None,
                        attempts=o.attempts - 1), execution_options={"synchronize_session": False})
        self.stats.released += sum(len(b.rows) for b in batches)

    # -- 2. send -------------------------------------------------------------------------
    def send(self, batch: _Claimed) -> None:
        self.stats.batches += 1
        messages, failures = self._render(batch)
        results = list(failures)
        if messages:
            try:
                results += batch.provider.send(messages, batch.batch_key)
            except TransientError as exc:
                results += [SendResult(m.outbox_id, False, error=str(exc), transient=True) for m in messages]
            except OutboundRefused as exc:  # the config points inside: no retry helps, a changed config does
                log.warning("provider %s: %s; batch %s failed", batch.provider.kind, exc, batch.batch_key)
                results += [SendResult(m.outbox_id, False, error=str(exc)) for m in messages]
            except Exception as exc:  # a provider bug must not lose the batch: retry with backoff
                log.exception("provider %s failed on batch %s", batch.provider.kind, batch.batch_key)
                results += [SendResult(m.outbox_id, False, error=f"{type(exc).__name__}: {exc}", transient=True)
                            for m in messages]
        self.record(batch, results)

    def _render(self, batch: _Claimed) -> tuple[list[OutgoingMessage], list[SendResult]]:
        messages: list[OutgoingMessage] = []
        failures: list[SendResult] = []
        with self.sessions() as session:
            contexts = load_contexts(session, [r.enrollment_id for r in batch.rows])
            nodes: dict[tuple[int, str], tuple[Any, str] | CampaignCanvasError] = {}
            for row in batch.rows:
                key = (row.version_id, row.node_id)
                if key not in nodes:
                    nodes[key] = self._content(session, *key)
                node = nodes[key]
                try:
                    if isinstance(node, CampaignCanvasError):
                        raise node
                    renderer, category = node
                    content = renderer.render(contexts[row.enrollment_id])
                except CampaignCanvasError as exc:
                    failures.append(SendResult(row.id, False, error=exc.message))
                    continue
                messages.append(OutgoingMessage(row.id, row.profile_id, row.to_address, content, category))
        return messages, failures

    @staticmethod
    def _content(session: Session, version_id: int, node_id: str) -> tuple[Any, str] | CampaignCanvasError:
        """A send node's compiled content and category (or why it cannot be rendered)."""
        document = session.get_one(CampaignVersion, version_id).document
        settings = next(n for n in document["nodes"] if n["id"] == node_id).get("settings", {})
        try:
            return renderer_for(session, settings), settings.get("category", "")
        except CampaignCanvasError as exc:
            return exc

    # -- 3. record -----------------------------------------------------------------------
    def record(self, batch: _Claimed, results: list[SendResult]) -> None:
        now = clock.now()
        by_id = {r.id: r for r in batch.rows}
        sent = [r for r in results if r.ok]
        unsettled = [r for r in results if not r.ok and r.unknown]  # stays `sending`: recovery asks
        final = [r for r in results if not r.ok and not r.unknown and (
            not r.transient or by_id[r.outbox_id].attempts + 1 >= self.max_attempts)]
        retry = [r for r in results if not r.ok and not r.unknown and r not in final]
        with db.transaction(self.sessions) as session:
            mine: list[ColumnElement[bool] | TextClause] = [OutboxMessage.batch_key == batch.batch_key, SENDING]
            if sent:
                session.execute(
                    update(OutboxMessage.__table__).where(OutboxMessage.id == bindparam("b_id"), *mine)
                    .values(status="sent", sent_at=now, lease_until=None, provider_message_id=bindparam("b_pid")),
                    [{"b_id": r.outbox_id, "b_pid": r.provider_message_id} for r in sent])
            if final:
                session.execute(
                    update(OutboxMessage.__table__).where(OutboxMessage.id == bindparam("b_id"), *mine)
                    .values(status="failed", lease_until=None, error=bindparam("b_error")),
                    [{"b_id": r.outbox_id, "b_error": (r.error or "")[:2000]} for r in final])
            for r in retry:
                due = now + _backoff(by_id[r.outbox_id].attempts + 1)
                session.execute(update(OutboxMessage).where(OutboxMessage.id == r.outbox_id, *mine).values(
                    status="queued", next_attempt_at=due, batch_key=None, lease_until=None, error=r.error),
                    execution_options={"synchronize_session": False})
                wakeups.request_dispatch(session, due)
            self._wake_senders(session, [by_id[r.outbox_id] for r in sent + final], now)
        self.stats.sent += len(sent)
        self.stats.failed += len(final)
        self.stats.retried += len(retry)
        self.stats.unsettled += len(unsettled)

    def _finish(self, session: Session, rows: Sequence[Any], status: str, now: datetime, *, error: str = "") -> None:
        for chosen in id_chunks(session, OutboxMessage.id, [r.id for r in rows]):
            session.execute(update(OutboxMessage).where(chosen).values(status=status, error=error, lease_until=None),
                            execution_options={"synchronize_session": False})
        self._wake_senders(session, rows, now)
        if status == "failed":
            self.stats.failed += len(rows)

    @staticmethod
    def _wake_senders(session: Session, rows: Sequence[Any], now: datetime) -> None:
        """The customers whose message is settled are due at their send node now."""
        by_node: dict[tuple[int, str], list[int]] = defaultdict(list)
        for row in rows:
            by_node[(row.version_id, row.node_id)].append(row.enrollment_id)
        for (version_id, node_id), enrollment_ids in by_node.items():
            for chosen in id_chunks(session, Enrollment.id, enrollment_ids):
                session.execute(update(Enrollment).where(chosen, Enrollment.node_id == node_id,
                                                         Enrollment.state == "active").values(due_at=now),
                                execution_options={"synchronize_session": False})
            wakeups.request(session, version_id, node_id, now)

    # -- recovery ------------------------------------------------------------------------
    def recover(self, budget: Budget | None = None) -> None:
        """Settle batches whose dispatcher died mid-send (their lease ran out), while the
        budget lasts (each asks a provider, whose answers may be slow and rate limited); the
        rest stay expired for the next run."""
        budget = budget or Budget.unlimited()
        now = clock.now()
        o = OutboxMessage
        with self.sessions() as session:
            expired = session.execute(select(o.batch_key, o.provider_id, o.channel).where(SENDING, o.lease_until < now)
                                      .group_by(o.batch_key, o.provider_id, o.channel)).all()
        for n, (batch_key, provider_id, channel) in enumerate(expired):
            if n and budget.spent():
                self._hand_over()
                return
            with db.transaction(self.sessions) as session:
                rows = session.execute(
                    select(o.id, o.version_id, o.node_id, o.enrollment_id, o.claimed_at)
                    .where(o.batch_key == batch_key, SENDING, o.lease_until < now).with_for_update(skip_locked=True)
                ).all()
                if not rows:
                    continue  # another dispatcher got there first
                provider = self.resolve(session, provider_id, channel)
                # a row is only ever sending with the batch key it was claimed under
                accepted = provider.accepted(cast(str, batch_key)) if provider is not None else None
                if provider is None or accepted is None:
                    self._finish(session, rows, "uncertain", now,
                                 error="the dispatcher stopped during the provider call and the provider cannot "
                                       "say whether it was sent; not resent")
                    self.stats.uncertain += len(rows)
                    continue
                done = [r for r in rows if r.id in accepted]
                settled = [r for r in rows if r.id not in accepted
                           and (r.claimed_at or now) + self.lease + provider.accepted_settle <= now]
                waiting = [r for r in rows if r.id not in accepted and r not in settled]
                if done:
                    for chosen in id_chunks(session, o.id, [r.id for r in done]):
                        session.execute(update(o).where(chosen).values(status="sent", sent_at=now, lease_until=None),
                                        execution_options={"synchronize_session": False})
                    self._wake_senders(session, done, now)
                for chosen in id_chunks(session, o.id, [r.id for r in settled]):  # never left: send again
                    session.execute(update(o).where(chosen).values(status="queued", batch_key=None, lease_until=None,
                                                                   next_attempt_at=now),
                                    execution_options={"synchronize_session": False})
                if settled:
                    wakeups.request_dispatch(session, now)
                for chosen in id_chunks(session, o.id, [r.id for r in waiting]):  # ask again in a minute
                    session.execute(update(o).where(chosen).values(lease_until=now + RECHECK),
                                    execution_options={"synchronize_session": False})
                self.stats.recovered_sent += len(done)
                self.stats.requeued += len(settled)


def request_stranded_dispatch(session: Session, now: datetime, overdue_by: timedelta) -> bool:
    """Ask for a dispatch run when messages are overdue (due longer than `overdue_by` ago) or
    stranded `sending` past their lease: a dispatch job that was lost, or killed mid-send,
    leaves them without one. The sweeper calls this; two partial-index lookups."""
    o = OutboxMessage
    overdue = session.scalar(select(o.id).where(QUEUED, o.next_attempt_at <= now - overdue_by).limit(1))
    stranded = overdue or session.scalar(select(o.id).where(SENDING, o.lease_until < now).limit(1))
    if stranded is None:
        return False
    wakeups.request_dispatch(session, now)
    return True
