"""Provider configs and the first profile endpoints through the REST API, on SQLite and
PostgreSQL.

What forms and the dispatcher rely on: kinds described with their schemas; configs created,
edited and deleted with every problem named by its field and nothing stored on a rejection;
exactly one default per channel; secrets that go in but never come out (nor into logs);
deleting a config suspends the active campaigns that name it; in-app notifications listed
newest first, filtered, paged and marked read.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from engine.core.models import (
    Campaign,
    CampaignVersion,
    Enrollment,
    Notification,
    ProviderConfig,
)
from engine.messaging import providers
from engine.messaging.channels import Provider, provider_kinds
from tests.support import add_profiles, error_of

API_KEY = "SG.live-7f3a9c2e1b5d4f60a8"
OTHER_KEY = "SG.rotated-0d9e8c7b6a5f4e3d"
SMS_TOKEN = "tw-token-91c4e2f7aa03"


class MailKind(Provider):
    """A throwaway email kind: the tests do not depend on the real kinds being there yet."""

    kind, channel, label = "test_mail", "email", "Test mail"
    settings_schema = {
        "type": "object",
        "properties": {"from_email": {"type": "string", "format": "email"}, "from_name": {"type": "string"}},
        "required": ["from_email"],
        "additionalProperties": False,
    }
    secrets_schema = {
        "type": "object",
        "properties": {"api_key": {"type": "string", "minLength": 12}, "webhook_key": {"type": "string"}},
        "required": ["api_key"],
        "additionalProperties": False,
    }


class SmsKind(Provider):
    kind, channel, label = "test_sms", "sms", "Test SMS"
    settings_schema = {"type": "object", "properties": {"from_number": {"type": "string"}}}
    secrets_schema = {"type": "object", "properties": {"auth_token": {"type": "string"}}}


class RecordingClient:
    """The Flask test client, keeping every response body to check no secret ever left."""

    def __init__(self, client):
        self.client, self.bodies = client, []

    def __getattr__(self, method):
        def call(*args, **kwargs):
            response = getattr(self.client, method)(*args, **kwargs)
            self.bodies.append(response.get_data(as_text=True))
            return response
        return call

    def assert_never_showed(self, *secrets: str) -> None:
        assert self.bodies
        for text in self.bodies:
            for secret in secrets:
                assert secret not in text


@pytest.fixture
def kinds(monkeypatch):
    monkeypatch.setitem(provider_kinds.kinds, MailKind.kind, MailKind)
    monkeypatch.setitem(provider_kinds.kinds, SmsKind.kind, SmsKind)


@pytest.fixture
def client(api, kinds):
    return RecordingClient(api)


def mail(name: str = "Main mail", **extra) -> dict:
    return {"name": name, "channel": "email", "kind": "test_mail",
            "settings": {"from_email": "news@example.com", "from_name": "News"},
            "secrets": {"api_key": API_KEY}, **extra}


def sms(name: str = "Main SMS", **extra) -> dict:
    return {"name": name, "channel": "sms", "kind": "test_sms", "settings": {"from_number": "+15550100"},
            "secrets": {"auth_token": SMS_TOKEN}, **extra}


def create(client, data: dict) -> dict:
    response = client.post("/api/providers", json=data)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()




def pointers(error: dict) -> set[str]:
    return {d["pointer"] for d in error["details"]}


def stored_configs(harness) -> int:
    with harness.session() as s:
        return s.scalar(select(func.count()).select_from(ProviderConfig))


def stored_secrets(harness, provider_id: int) -> dict:
    """What the dispatcher gets: the provider object built from the stored config."""
    with harness.session() as s:
        return providers.build(providers.get_provider(s, provider_id)).secrets


def defaults(client, channel: str) -> list[str]:
    items = client.get(f"/api/providers?channel={channel}").get_json()["items"]
    return [p["name"] for p in items if p["is_default"]]


# --------------------------------------------------------------------------- kinds and CRUD


def test_provider_kinds_describe_their_forms(client):
    response = client.get("/api/provider-kinds")
    assert response.status_code == 200
    kinds = {k["kind"]: k for k in response.get_json()}
    assert kinds["test_mail"] == {"kind": "test_mail", "channel": "email", "label": "Test mail",
                                  "settings_schema": MailKind.settings_schema,
                                  "secrets_schema": MailKind.secrets_schema}
    for kind in kinds.values():
        Draft202012Validator.check_schema(kind["settings_schema"])
        Draft202012Validator.check_schema(kind["secrets_schema"])


def test_create_read_list_update_delete(client, harness):
    created = create(client, mail())
    assert created["name"] == "Main mail" and created["channel"] == "email" and created["kind"] == "test_mail"
    assert created["settings"] == {"from_email": "news@example.com", "from_name": "News"}
    assert created["is_default"] is True
    texts = create(client, sms())

    assert client.get(f"/api/providers/{created['id']}").get_json() == created
    assert [p["name"] for p in client.get("/api/providers").get_json()["items"]] == ["Main mail", "Main SMS"]
    assert [p["id"] for p in client.get("/api/providers?channel=sms").get_json()["items"]] == [texts["id"]]
    error_of(client.get("/api/providers?channel=fax"), 400, "invalid_input")

    response = client.put(f"/api/providers/{created['id']}",
                          json={"name": "Newsletter", "settings": {"from_email": "hello@example.com"}})
    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    assert updated["name"] == "Newsletter" and updated["settings"] == {"from_email": "hello@example.com"}
    assert client.get(f"/api/providers/{created['id']}").get_json()["name"] == "Newsletter"

    # a form may send back what it got, read-only fields included
    response = client.put(f"/api/providers/{created['id']}", json={**updated, "name": "Newsletter 2"})
    assert response.status_code == 200, response.get_data(as_text=True)
    error = error_of(client.put(f"/api/providers/{created['id']}", json={"kind": "test_sms"}), 400, "invalid_input")
    assert pointers(error) == {"/kind"}

    response = client.delete(f"/api/providers/{created['id']}")
    assert response.status_code == 200
    assert response.get_json() == {"deleted": created["id"], "suspended_campaigns": []}
    error_of(client.get(f"/api/providers/{created['id']}"), 404, "not_found")
    assert stored_configs(harness) == 1


def test_unknown_provider_ids_are_404_json(client):
    error_of(client.get("/api/providers/999"), 404, "not_found")
    error_of(client.put("/api/providers/999", json={"name": "x"}), 404, "not_found")
    error_of(client.delete("/api/providers/999"), 404, "not_found")


# --------------------------------------------------------------------------- one default per channel


def test_exactly_one_default_per_channel(client, harness):
    first = create(client, mail("First"))
    second = create(client, mail("Second"))
    assert first["is_default"] is True and second["is_default"] is False
    assert create(client, sms())["is_default"] is True  # another channel has a default of its own

    third = create(client, mail("Third", is_default=True))
    assert third["is_default"] is True
    assert defaults(client, "email") == ["Third"] and defaults(client, "sms") == ["Main SMS"]

    assert client.put(f"/api/providers/{second['id']}", json={"is_default": True}).get_json()["is_default"]
    assert defaults(client, "email") == ["Second"]
    with harness.session() as s:
        assert providers.default_provider(s, "email").id == second["id"]
        assert providers.default_provider(s, "push") is None

    error = error_of(client.put(f"/api/providers/{second['id']}", json={"is_default": False}), 400, "invalid_input")
    assert pointers(error) == {"/is_default"}
    assert defaults(client, "email") == ["Second"]

    client.delete(f"/api/providers/{second['id']}")  # the default goes: the oldest left takes over
    assert defaults(client, "email") == ["First"]
    client.delete(f"/api/providers/{third['id']}")  # not the default: nothing changes
    assert defaults(client, "email") == ["First"]


# --------------------------------------------------------------------------- secrets


def test_secrets_are_write_only(client, harness):
    created = create(client, mail())
    assert created["secrets_set"] == {"api_key": True} and "secrets" not in created
    provider_id = created["id"]
    assert client.get(f"/api/providers/{provider_id}").get_json()["secrets_set"] == {"api_key": True}

    # a form that never sees the secret saves without it: the stored key is kept
    response = client.put(f"/api/providers/{provider_id}",
                          json={"name": "Main mail", "settings": {"from_email": "other@example.com"}})
    assert response.status_code == 200 and response.get_json()["secrets_set"] == {"api_key": True}
    assert stored_secrets(harness, provider_id) == {"api_key": API_KEY}

    response = client.put(f"/api/providers/{provider_id}", json={"secrets": {"webhook_key": OTHER_KEY}})
    assert response.get_json()["secrets_set"] == {"api_key": True, "webhook_key": True}
    assert stored_secrets(harness, provider_id) == {"api_key": API_KEY, "webhook_key": OTHER_KEY}

    # null removes a secret; a required one cannot be removed
    response = client.put(f"/api/providers/{provider_id}", json={"secrets": {"webhook_key": None}})
    assert response.get_json()["secrets_set"] == {"api_key": True}
    error = error_of(client.put(f"/api/providers/{provider_id}", json={"secrets": {"api_key": None}}),
                     400, "invalid_input")
    assert pointers(error) == {"/secrets/api_key"}
    assert stored_secrets(harness, provider_id) == {"api_key": API_KEY}

    # a rejected secret is not quoted back
    short = "SHORTKEY1"
    error = error_of(client.put(f"/api/providers/{provider_id}", json={"secrets": {"api_key": short}}),
                     400, "invalid_input")
    assert pointers(error) == {"/secrets/api_key"}
    client.get("/api/providers")
    client.delete(f"/api/providers/{provider_id}")
    client.assert_never_showed(API_KEY, OTHER_KEY, short)


def test_secrets_never_reach_the_logs(client, harness, caplog):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)  # everything, SQL statements and their parameters too
    try:
        redaction = providers.install_redaction(harness.rt)
        assert redaction in handler.filters
        created = create(client, mail())
        client.put(f"/api/providers/{created['id']}", json={"secrets": {"webhook_key": OTHER_KEY}})
        logging.getLogger("somewhere.careless").warning("calling with key=%s", API_KEY)
        try:
            raise RuntimeError(f"provider refused {OTHER_KEY!r}")
        except RuntimeError:
            logging.getLogger("somewhere.careless").exception("send failed")
    finally:
        root.removeHandler(handler)
    output = stream.getvalue()
    assert "calling with key=***" in output and "provider refused '***'" in output
    assert API_KEY not in output and OTHER_KEY not in output


def test_redaction_knows_the_secrets_stored_before_it_was_installed(harness, kinds):
    key = "stored-before-start-5521"
    with harness.transaction() as s:
        s.add(ProviderConfig(channel="email", kind="test_mail", name="Old", settings={"from_email": "a@b.co"},
                             secrets={"api_key": key}, is_default=True))
    redaction = providers.install_redaction(harness.rt)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (key,), None)
    assert redaction.filter(record) and record.getMessage() == "token ***"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("change", "pointer"), [
    ({"settings": {"from_name": "News"}}, "/settings/from_email"),
    ({"settings": {"from_email": "not an address"}}, "/settings/from_email"),
    ({"settings": {"from_email": "a@example.com", "bcc": "x@example.com"}}, "/settings/bcc"),
    ({"secrets": {}}, "/secrets/api_key"),
    ({"secrets": {"api_key": 12345678901234}}, "/secrets/api_key"),
    ({"secrets": {"api_key": API_KEY, "password": "hunter22"}}, "/secrets/password"),
    ({"kind": "carrier_pigeon"}, "/kind"),
    ({"kind": "test_sms"}, "/kind"),
    ({"channel": "fax"}, "/channel"),
    ({"name": ""}, "/name"),
    ({"name": None}, "/name"),
    ({"settings": "from_email=a@example.com"}, "/settings"),
    ({"setting": {}}, "/setting"),
])
def test_invalid_configs_name_the_field_and_store_nothing(client, harness, change, pointer):
    response = client.post("/api/providers", json={**mail(), **change})
    error = error_of(response, 400, "invalid_input")
    assert pointer in pointers(error), error
    assert pointer.lstrip("/") in error["message"]
    assert stored_configs(harness) == 0
    client.assert_never_showed(API_KEY)


def test_unknown_kind_lists_the_known_ones(client):
    error = error_of(client.post("/api/providers", json=mail(kind="carrier_pigeon")), 400, "invalid_input")
    assert error["details"][0]["code"] == "unknown_kind"
    assert "test_mail" in error["message"]


def test_invalid_update_changes_nothing(client, harness):
    created = create(client, mail())
    response = client.put(f"/api/providers/{created['id']}", json={
        "name": "Renamed", "settings": {"from_email": "nope"}, "secrets": {"api_key": OTHER_KEY}})
    assert pointers(error_of(response, 400, "invalid_input")) == {"/settings/from_email"}
    assert client.get(f"/api/providers/{created['id']}").get_json() == created
    assert stored_secrets(harness, created["id"]) == {"api_key": API_KEY}


def test_a_taken_name_is_a_conflict_not_a_crash(client, harness):
    create(client, mail("Main mail"))
    other = create(client, sms("Texts"))
    error = error_of(client.post("/api/providers", json=mail("Main mail")), 409, "name_taken")
    assert pointers(error) == {"/name"}
    assert pointers(error_of(client.put(f"/api/providers/{other['id']}", json={"name": "Main mail"}),
                             409, "name_taken")) == {"/name"}
    assert stored_configs(harness) == 2
    assert client.get(f"/api/providers/{other['id']}").get_json()["name"] == "Texts"


def test_resolve_gives_the_named_config_else_the_channel_default(client, harness):
    main, backup = create(client, mail("Main mail")), create(client, mail("Backup mail"))
    client.put(f"/api/providers/{backup['id']}", json={"secrets": {"api_key": OTHER_KEY}})
    with harness.session() as s:
        assert providers.resolve(s, main["id"], "email").secrets["api_key"] == API_KEY
        assert providers.resolve(s, backup["id"], "email").secrets["api_key"] == OTHER_KEY
        assert providers.resolve(s, None, "email").secrets["api_key"] == API_KEY
        assert isinstance(providers.resolve(s, None, "email"), MailKind)
        assert providers.resolve(s, None, "sms") is None


# --------------------------------------------------------------------------- deleting a config in use


def _campaign(session, name: str, status: str, *provider_ids: int) -> Campaign:
    """A campaign whose current version has a send node per provider id (stored as is: the
    real send node types are not needed to check which documents name a provider)."""
    campaign = Campaign(name=name, status=status)
    session.add(campaign)
    session.flush()
    _version(session, campaign, 1, *provider_ids)
    return campaign


def _version(session, campaign: Campaign, number: int, *provider_ids: int) -> CampaignVersion:
    nodes = [{"id": "start", "type": "select_segment", "settings": {"source": "all"}}]
    nodes += [{"id": f"send{n}", "type": "send_email", "settings": {"provider_id": pid, "subject": "Hi"}}
              for n, pid in enumerate(provider_ids)]
    version = CampaignVersion(campaign_id=campaign.id, number=number,
                              document={"name": campaign.name, "nodes": nodes, "edges": []})
    session.add(version)
    session.flush()
    campaign.version_id = version.id
    return version


def test_deleting_a_config_in_use_suspends_the_active_campaigns_naming_it(client, harness):
    main, backup = create(client, mail("Main mail")), create(client, mail("Backup mail"))
    with harness.transaction() as s:
        using = _campaign(s, "Uses it", "active", main["id"])
        other = _campaign(s, "Uses the backup", "active", backup["id"])
        draft = _campaign(s, "Draft using it", "draft", main["id"])
        # customers still on version 1 (which names it), though version 2 does not
        old = _campaign(s, "Old version uses it", "active", main["id"])
        old_version_id = old.version_id
        _version(s, old, 2, backup["id"])
        (profile,) = add_profiles(s, 1)
        s.add(Enrollment(campaign_id=old.id, version_id=old_version_id, profile_id=profile, node_id="send0"))
        ids = {c.name: c.id for c in (using, other, draft, old)}

    with harness.session() as s:
        assert providers.campaigns_using(s, main["id"]) == sorted([ids["Uses it"], ids["Old version uses it"]])

    response = client.delete(f"/api/providers/{main['id']}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["suspended_campaigns"] == sorted([ids["Uses it"], ids["Old version uses it"]])
    for name in ("Uses it", "Old version uses it"):
        campaign = client.get(f"/api/campaigns/{ids[name]}").get_json()
        assert campaign["status"] == "suspended"
        assert campaign["status_reason"] == "provider config Main mail was removed"
    assert client.get(f"/api/campaigns/{ids['Uses the backup']}").get_json()["status"] == "active"
    assert client.get(f"/api/campaigns/{ids['Draft using it']}").get_json()["status"] == "draft"
    assert defaults(client, "email") == ["Backup mail"]


# --------------------------------------------------------------------------- profiles and notifications


@pytest.fixture
def inbox(harness):
    """A profile with 5 notifications a minute apart (n1 oldest; n2 and n4 read), and
    another profile with one of its own."""
    start = harness.clock.now()
    with harness.transaction() as s:
        me, someone = add_profiles(s, 2, attributes={"tier": "gold"}, points=120)
        rows = [Notification(profile_id=me, title=f"n{i}", body=f"body {i}", category="promo",
                             data={"i": i}, created_at=start + timedelta(minutes=i),
                             read_at=start if i in (2, 4) else None) for i in range(1, 6)]
        foreign = Notification(profile_id=someone, title="theirs")
        s.add_all([*rows, foreign])
        s.flush()
        return {"me": me, "someone": someone, "ids": {n.title: n.id for n in rows}, "foreign": foreign.id}


def test_profile_shows_fields_attributes_points_and_consent(client, inbox):
    response = client.get(f"/api/profiles/{inbox['me']}")
    assert response.status_code == 200
    profile = response.get_json()
    assert profile["id"] == inbox["me"] and profile["external_id"] == "p0" and profile["email"] == "p0@example.com"
    assert profile["attributes"] == {"tier": "gold"} and profile["points"] == 120
    assert profile["email_opt_out"] is False and profile["sms_opt_out"] is False
    assert profile["push_opt_out"] is False and profile["email_bounced_at"] is None
    error_of(client.get("/api/profiles/999999"), 404, "not_found")


def titles(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [n["title"] for n in response.get_json()["items"]]


def test_notifications_newest_first_unread_filter_and_paging(client, inbox):
    base = f"/api/profiles/{inbox['me']}/notifications"
    listing = client.get(base).get_json()
    assert [n["title"] for n in listing["items"]] == ["n5", "n4", "n3", "n2", "n1"]
    assert listing["next_before"] is None and listing["unread_count"] == 3
    assert titles(client.get(f"{base}?unread=1")) == ["n5", "n3", "n1"]

    first = client.get(f"{base}?limit=2").get_json()
    assert [n["title"] for n in first["items"]] == ["n5", "n4"] and first["next_before"] == inbox["ids"]["n4"]
    second = client.get(f"{base}?limit=2&before={first['next_before']}").get_json()
    assert [n["title"] for n in second["items"]] == ["n3", "n2"]
    third = client.get(f"{base}?limit=2&before={second['next_before']}").get_json()
    assert [n["title"] for n in third["items"]] == ["n1"] and third["next_before"] is None
    assert titles(client.get(f"{base}?unread=1&limit=1&before={inbox['ids']['n5']}")) == ["n3"]

    assert titles(client.get(f"{base}?limit=1000")) == ["n5", "n4", "n3", "n2", "n1"]  # clamped to 100
    for bad in ("limit=0", "limit=ten", "unread=maybe", f"before={inbox['foreign']}"):
        error_of(client.get(f"{base}?{bad}"), 400, "invalid_input")


def test_mark_a_notification_read(client, inbox, harness):
    base = f"/api/profiles/{inbox['me']}/notifications"
    n3 = inbox["ids"]["n3"]
    response = client.post(f"{base}/{n3}/read")
    assert response.status_code == 200
    read = response.get_json()
    assert read["id"] == n3 and read["read"] is True and read["read_at"] == harness.clock.now().isoformat() + "Z"
    assert titles(client.get(f"{base}?unread=1")) == ["n5", "n1"]

    harness.clock.advance(timedelta(hours=1))
    assert client.post(f"{base}/{n3}/read").get_json()["read_at"] == read["read_at"]  # the first read counts
    assert client.get(base).get_json()["unread_count"] == 2


def test_notifications_of_unknown_or_other_profiles_are_404(client, inbox):
    error_of(client.get("/api/profiles/999999/notifications"), 404, "not_found")
    error_of(client.post(f"/api/profiles/999999/notifications/{inbox['ids']['n1']}/read"), 404, "not_found")
    error_of(client.post(f"/api/profiles/{inbox['me']}/notifications/999999/read"), 404, "not_found")
    error_of(client.post(f"/api/profiles/{inbox['me']}/notifications/{inbox['foreign']}/read"), 404, "not_found")
