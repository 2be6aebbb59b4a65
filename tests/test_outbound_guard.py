"""Provider and web-API calls may not reach internal addresses (SSRF), on SQLite and
PostgreSQL with a real Redis: what a marketer hears when saving a config or a campaign, and
what happens to a message whose provider's name resolves inside when it is sent.

The allow-list is this process's environment (CC_OUTBOUND_ALLOW); the suite allows loopback
for its stand-ins (tests/conftest.py), and each test here sets what it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.core.models import Campaign, OutboxMessage, ProviderConfig
from engine.journeys import campaigns
from engine.messaging import providers
from tests.standins import (
    FCMStandIn,
    LoyaltyStandIn,
    SendGridStandIn,
    SMTPStandIn,
    TwilioStandIn,
    WebhookStandIn,
)
from tests.support import add_profiles, doc, error_of, stats

ALLOW = "CC_OUTBOUND_ALLOW"

#: (how a marketer wrote the host, the internal address it is); the resolver reads each
INTERNAL = [
    ("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("0x7f000001", "0x7f000001 is 127.0.0.1"),
    ("2130706433", "2130706433 is 127.0.0.1"), ("127.1", "127.1 is 127.0.0.1"),
    ("0177.0.0.1", "0177.0.0.1 is 127.0.0.1"), ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ("localhost", "localhost is 127.0.0.1"), ("10.0.0.5", "10.0.0.5"), ("172.16.3.4", "172.16.3.4"),
    ("192.168.1.1", "192.168.1.1"), ("169.254.169.254", "169.254.169.254"), ("[fd00:ec2::254]", "fd00:ec2::254"),
    ("[fe80::1]", "fe80::1"), ("0.0.0.0", "0.0.0.0"), ("[::]", "::"), ("224.0.0.1", "224.0.0.1"),
    ("100.64.0.1", "100.64.0.1"), ("[2002:7f00:1::]", "2002:7f00:1::"),
]
METADATA = "metadata.google.internal"


def url_kinds() -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any], Callable[[str], dict[str, Any]]]]:
    """Per provider kind: (channel, target setting, other settings, secrets, settings for a host)."""
    return {
        "webhook": ("webapi", "url", {}, {}, lambda h: {"url": f"http://{h}:8080/hook"}),
        "loyalty_http": ("loyalty", "url", {}, {}, lambda h: {"url": f"https://{h}/accruals"}),
        "sendgrid": ("email", "host", {"from_email": "news@example.com"}, {"api_key": "SG.x"},
                     lambda h: {"host": f"http://{h}"}),
        "twilio": ("sms", "base_url", {"account_sid": "AC1", "from_number": "+15550000000"}, {"auth_token": "t"},
                   lambda h: {"base_url": f"https://{h}:443"}),
        "fcm": ("push", "base_url", {"project_id": "p"}, {"server_key": "k"}, lambda h: {"base_url": f"http://{h}"}),
        "smtp": ("email", "host", {"from_email": "news@example.com", "port": 25}, {},
                 lambda h: {"host": h.strip("[]")}),
    }


def config(kind: str, host: str, name: str = "Internal") -> dict[str, Any]:
    channel, _, settings, secrets, target = url_kinds()[kind]
    return {"name": name, "channel": channel, "kind": kind, "settings": {**settings, **target(host)},
            "secrets": secrets}


def stored(h, model: Any) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def nothing_allowed(monkeypatch) -> None:
    monkeypatch.setenv(ALLOW, "")


# --------------------------------------------------------------------------- at save


@pytest.mark.parametrize("kind", sorted(url_kinds()))
def test_every_internal_spelling_is_refused_when_a_provider_is_saved(api, harness, nothing_allowed, kind):
    pointer = f"/settings/{url_kinds()[kind][1]}"
    for host, shown in INTERNAL:
        error = error_of(api.post("/api/providers", json=config(kind, host)), 400, "invalid_input")
        assert error["details"] == [{"pointer": pointer, "code": "internal_address", "message":
                                     f"points at an internal address ({shown}); ask your operator to allow it"}], host
        assert error["message"] == (f"{pointer.lstrip('/')} points at an internal address ({shown}); "
                                    "ask your operator to allow it")
    error = error_of(api.post("/api/providers", json=config(kind, METADATA)), 400, "invalid_input")
    assert error["details"][0]["message"] == ("points at a cloud metadata service (metadata.google.internal); "
                                              "ask your operator to allow it")
    assert stored(harness, ProviderConfig) == 0


def test_an_internal_target_is_refused_when_a_config_is_edited(api, harness, nothing_allowed):
    created = api.post("/api/providers", json=config("webhook", "crm.example.com", "CRM"))
    assert created.status_code == 201, created.get_data(as_text=True)
    provider_id = created.get_json()["id"]
    moved = api.put(f"/api/providers/{provider_id}", json={"settings": {"url": "http://0x7f000001:6379/"}})
    error = error_of(moved, 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/settings/url"]
    assert api.get(f"/api/providers/{provider_id}").get_json()["settings"]["url"] == "http://crm.example.com:8080/hook"


def test_the_allow_list_lets_chosen_internal_targets_through(api, harness, monkeypatch):
    monkeypatch.setenv(ALLOW, "10.1.2.0/24, ::1/128,crm.internal.example,localhost")
    for n, host in enumerate(["10.1.2.3", "[::1]", "localhost", "crm.internal.example"]):
        answer = api.post("/api/providers", json=config("webhook", host, f"Allowed {n}"))
        assert answer.status_code == 201, (host, answer.get_data(as_text=True))
    refused = [("10.1.3.1", "10.1.3.1"), ("127.0.0.1", "127.0.0.1"), ("0x7f000001", "0x7f000001 is 127.0.0.1")]
    for host, shown in refused:
        error = error_of(api.post("/api/providers", json=config("webhook", host, "Refused")), 400, "invalid_input")
        assert f"({shown})" in error["details"][0]["message"]
    assert stored(harness, ProviderConfig) == 4


@pytest.mark.parametrize(("host", "shown"), [*INTERNAL, (METADATA, METADATA)])
def test_a_campaign_calling_a_web_api_that_points_inside_is_refused(api, harness, nothing_allowed, host, shown):
    """A config saved before the allow-list was narrowed (or by an older release) is caught
    when a campaign that would call it is saved: on the node, naming the field to change."""
    with harness.transaction() as s:
        s.add(ProviderConfig(channel="webapi", kind="webhook", name="CRM hook", is_default=True,
                             settings=config("webhook", host)["settings"], secrets={}))
        s.flush()
        provider_id = s.scalar(select(ProviderConfig.id))
    document = doc([("all", "select_segment", {"source": "all"}),
                    ("crm", "webapi_call", {"provider_id": provider_id, "content": {"body": {"id": "x"}}})],
                   [("all", "out", "crm")])
    document["nodes"][1]["label"] = "Tell the CRM"

    response = api.post("/api/campaigns", json=document)

    error = error_of(response, 422, "invalid_document")
    (problem,) = error["details"]
    assert (problem["pointer"], problem["node_id"], problem["code"]) == ("/nodes/1/settings/provider_id", "crm",
                                                                         "internal_address")
    internal = (f"points at a cloud metadata service ({METADATA})" if host == METADATA
                else f"points at an internal address ({shown})")
    assert problem["message"] == (f"Node 'Tell the CRM' sends through provider config 'CRM hook', whose URL "
                                  f"{internal}; ask your operator to allow it")
    assert stored(harness, Campaign) == 0


# --------------------------------------------------------------------------- at send


@dataclass
class Channel:
    """A provider kind with its stand-in, and a send node that goes through it."""

    kind: str
    channel: str
    node: tuple[str, dict[str, Any]]
    start: Callable[[], Any]
    #: the stand-in's settings with its host written as `localhost`
    settings: Callable[[Any], dict[str, Any]]
    secrets: Callable[[Any], dict[str, Any]]
    received: Callable[[Any], int]


def _localhost(stand_in: Any) -> dict[str, Any]:
    return {k: v.replace("127.0.0.1", "localhost") if isinstance(v, str) else v
            for k, v in stand_in.settings().items()}


NOW = {"deliver_immediately": True}
CHANNELS = {
    "sendgrid": Channel("sendgrid", "email", ("send_email", {**NOW, "content": {"subject": "Hi", "text": "Hello"}}),
                        SendGridStandIn, _localhost, lambda s: s.secrets(), lambda s: len(s.requests)),
    "smtp": Channel("smtp", "email", ("send_email", {**NOW, "content": {"subject": "Hi", "text": "Hello"}}),
                    SMTPStandIn, _localhost, lambda s: {}, lambda s: s.connections),
    "twilio": Channel("twilio", "sms", ("send_sms", {**NOW, "content": {"body": "Hello"}}), TwilioStandIn,
                      _localhost, lambda s: s.secrets(), lambda s: len(s.requests)),
    "fcm": Channel("fcm", "push", ("send_push", {**NOW, "content": {"title": "Hello"}}), FCMStandIn, _localhost,
                   lambda s: s.secrets(), lambda s: len(s.requests)),
    "webhook": Channel("webhook", "webapi", ("webapi_call", {"content": {"body": {"id": "{{ profile.id }}"}}}),
                       WebhookStandIn, _localhost, lambda s: {}, lambda s: len(s.requests)),
    "loyalty_http": Channel("loyalty_http", "loyalty", ("accrue_bonus_points", {"content": {"amount": 10}}),
                            LoyaltyStandIn, _localhost, lambda s: s.secrets(), lambda s: len(s.requests)),
}


@pytest.fixture(params=sorted(CHANNELS))
def channel(request) -> Iterator[tuple[Channel, Any]]:
    chosen = CHANNELS[request.param]
    stand_in = chosen.start()
    try:
        yield chosen, stand_in
    finally:
        stand_in.close()


def launch_sends(h, node: tuple[str, dict[str, Any]], name: str) -> int:
    """A launched campaign sending through the channel's default provider to everyone; its id."""
    with h.transaction() as s:
        campaign = campaigns.create(s, doc([("all", "select_segment", {"source": "all"}), ("send", *node)],
                                           [("all", "out", "send")], name=name))
        campaigns.launch(s, campaign.id, h.clock.now())
        return campaign.id


def outbox_of(h, campaign_id: int) -> list[tuple[str, str | None]]:
    with h.session() as s:
        return [tuple(r) for r in s.execute(select(OutboxMessage.status, OutboxMessage.error)
                                            .where(OutboxMessage.campaign_id == campaign_id)
                                            .order_by(OutboxMessage.id))]


def test_a_name_resolving_to_loopback_is_refused_when_sending(harness, monkeypatch, channel):
    """Saved while `localhost` was allowed by name (as if it had resolved to a public address
    then); by send time it is not: the connection is refused on the address the name
    resolves to, the messages fail with the reason, and nothing reaches the stand-in. An
    allow-list entry covering the address (127.0.0.1/32) lets the same config through."""
    chosen, stand_in = channel
    monkeypatch.setenv(ALLOW, "localhost")
    with harness.transaction() as s:
        add_profiles(s, 3, phone=lambda i: f"+1555{i:07d}", push_tokens=lambda i: [f"device-{i}"])
        providers.create_provider(s, {"channel": chosen.channel, "kind": chosen.kind, "name": "Inside",
                                      "settings": chosen.settings(stand_in), "secrets": chosen.secrets(stand_in)})
    refused = launch_sends(harness, chosen.node, "Refused at send")

    monkeypatch.setenv(ALLOW, "")
    harness.machine.run_due()

    reason = ("refused to connect to localhost: 127.0.0.1 is an internal address (loopback); "
              "an operator may allow it in CC_OUTBOUND_ALLOW")
    assert outbox_of(harness, refused) == [("failed", reason)] * 3
    assert stats(harness, refused)["send"]["left"] == {"failed": 3}
    assert chosen.received(stand_in) == 0

    monkeypatch.setenv(ALLOW, "127.0.0.1/32")
    allowed = launch_sends(harness, chosen.node, "Allowed")
    harness.machine.run_due()
    assert outbox_of(harness, allowed) == [("sent", None)] * 3
    assert chosen.received(stand_in) >= 1
