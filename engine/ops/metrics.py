"""What operators watch: a Prometheus collector that reads the truth at scrape time.

Nothing is counted in process memory: every value is read from the database and Redis when
Prometheus scrapes, so any API server answers the same and a restart loses nothing.

| series | labels | what it is | cost per scrape |
| --- | --- | --- | --- |
| `cc_rq_queued_jobs` | queue | jobs waiting in the RQ queue | Redis LLEN |
| `cc_rq_scheduled_jobs` | queue | jobs scheduled for later (`enqueue_at`) | Redis ZCARD |
| `cc_rq_failed_jobs` | queue | jobs in RQ's failed registry | Redis ZCARD |
| `cc_rq_workers` | queue | RQ workers alive on the queue (heartbeat key present) | SMEMBERS + one HGETALL per worker |
| `cc_redis_up` | | 1 when Redis answered this scrape, 0 otherwise (the cc_rq_* series are then absent) | |
| `cc_positions_active` | | customers in flight (active enrollments) | COUNT over the partial index `ix_enrollments_active` |
| `cc_positions_overdue` | | active positions due more than CC_BUCKET_SECONDS ago: work that should have run | same index, `due_at` predicate |
| `cc_outbox_queued` | | messages waiting to be sent (including ones held for a delivery window) | COUNT over the partial index `ix_outbox_due` |
| `cc_outbox_sending` | | messages handed to a provider, awaiting its answer | COUNT over the partial index `ix_outbox_sending` |
| `cc_outbox_lag_seconds` | | age of the oldest message due but not sent (0 when none) | MIN over `ix_outbox_due` |
| `cc_outbox_failed` | | messages that failed for good (all time) | see below |
| `cc_outbox_uncertain` | | messages a dispatcher died sending, the provider could not confirm (all time) | see below |
| `cc_campaigns` | status | campaigns per status (every status present, 0 included) | GROUP BY on the indexed `campaigns.status` |
| `cc_nodes_failing` | | campaign nodes whose last run failed (their campaign is suspended after 5 in a row) | COUNT of `node_failures`, one row per failing node |

The positions and outbox counts only touch the partial indexes, whose size is the work in
flight, never the history; the failed and uncertain totals read the partial index
`ix_outbox_failures`, whose size is the failures ever seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select, text

from engine.core import clock, node_failures
from engine.core.models import ACTIVE, Campaign, Enrollment, OutboxMessage

#: every campaign status, so a status with no campaign reads 0 rather than vanishing
CAMPAIGN_STATUSES = ("draft", "scheduled", "active", "paused", "suspended", "stopped", "finished")

#: the partial indexes' predicates as literals, so the planner can always match the index
_QUEUED = text("outbox.status = 'queued'")
_SENDING = text("outbox.status = 'sending'")


class CampaignCanvasCollector(Collector):
    """Reads every series from the runtime's database and Redis when collected."""

    def __init__(self, rt: Any):
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._redis_series()
        yield from self._database_series()

    # ------------------------------------------------------------------ Redis / RQ

    def _redis_series(self) -> Iterator[GaugeMetricFamily]:
        from rq import Worker

        queue = self.rt.queue
        try:
            queued = queue.count
            scheduled = self.rt.redis.zcard(queue.scheduled_job_registry.key)
            failed = self.rt.redis.zcard(queue.failed_job_registry.key)
            workers = len(Worker.all(queue=queue))
        except redis.RedisError:
            yield _gauge("cc_redis_up", "1 when Redis answered this scrape, 0 otherwise", 0)
            return
        yield _gauge("cc_redis_up", "1 when Redis answered this scrape, 0 otherwise", 1)
        name = queue.name
        yield _gauge("cc_rq_queued_jobs", "Jobs waiting in the RQ queue", queued, queue=name)
        yield _gauge("cc_rq_scheduled_jobs", "Jobs scheduled for a later time (enqueue_at)", scheduled, queue=name)
        yield _gauge("cc_rq_failed_jobs", "Jobs in the RQ failed job registry", failed, queue=name)
        yield _gauge("cc_rq_workers", "RQ workers alive on the queue", workers, queue=name)

    # ------------------------------------------------------------------ database

    def _database_series(self) -> Iterator[GaugeMetricFamily]:
        now = clock.now()
        overdue_before = now - timedelta(seconds=self.rt.settings.bucket_seconds)
        with self.rt.sessions() as session:
            active = session.scalar(select(func.count()).select_from(Enrollment).where(ACTIVE))
            overdue = session.scalar(select(func.count()).select_from(Enrollment)
                                     .where(ACTIVE, Enrollment.due_at < overdue_before))
            queued = session.scalar(select(func.count()).select_from(OutboxMessage).where(_QUEUED))
            sending = session.scalar(select(func.count()).select_from(OutboxMessage).where(_SENDING))
            oldest_due = session.scalar(select(func.min(OutboxMessage.next_attempt_at))
                                        .where(_QUEUED, OutboxMessage.next_attempt_at <= now))
            settled_bad = dict(session.execute(
                select(OutboxMessage.status, func.count())
                .where(text("outbox.status IN ('failed', 'uncertain')"))  # literal: matches the partial index
                .group_by(OutboxMessage.status)).all())
            campaigns = dict(session.execute(select(Campaign.status, func.count()).group_by(Campaign.status)).all())
            failing = node_failures.failing(session)
        lag = max((now - oldest_due).total_seconds(), 0.0) if oldest_due is not None else 0.0

        yield _gauge("cc_positions_active", "Customers in flight (active enrollments)", active or 0)
        yield _gauge("cc_positions_overdue",
                     "Active positions due more than CC_BUCKET_SECONDS ago and not yet processed", overdue or 0)
        yield _gauge("cc_outbox_queued", "Outbox messages waiting to be sent", queued or 0)
        yield _gauge("cc_outbox_sending", "Outbox messages handed to a provider, awaiting its answer", sending or 0)
        yield _gauge("cc_outbox_lag_seconds", "Age of the oldest outbox message due but not sent (0 when none)", lag)
        yield _gauge("cc_outbox_failed", "Outbox messages that failed for good", settled_bad.get("failed", 0))
        yield _gauge("cc_outbox_uncertain", "Outbox messages a provider could not confirm after a dispatcher died",
                     settled_bad.get("uncertain", 0))
        yield _gauge("cc_nodes_failing", "Campaign nodes whose last run failed (5 failures in a row suspend "
                     "their campaign)", failing)
        family = GaugeMetricFamily("cc_campaigns", "Campaigns per status", labels=["status"])
        for status in (*CAMPAIGN_STATUSES, *sorted(set(campaigns) - set(CAMPAIGN_STATUSES))):
            family.add_metric([status], campaigns.get(status, 0))
        yield family


def _gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def registry_for(rt: Any) -> CollectorRegistry:
    """A registry holding only our collector (no process or platform series: they would
    differ per server and say nothing about the campaigns)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CampaignCanvasCollector(rt))
    return registry
