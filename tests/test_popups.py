"""Popups, end to end on SQLite and PostgreSQL: the show-popup node writes them in the batch's
transaction, a site key fetches the popup for an action (once, the oldest first, never an
expired one, once even under concurrent requests), the popup's token reports views and clicks
(each recorded once as an event campaigns react to), and a site key can do nothing else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.core.batch import Batch, NodeContext
from engine.core.models import Enrollment, Event, Popup
from nodes.engagement import ShowPopup
from tests.support import (
    add_profiles,
    at_once,
    doc,
    error_of,
    launch,
    ok,
    points,
    stats,
)

ALL = ("all", "select_segment", {"source": "all"})
HELLO = {"title": "Hello {{ profile.attributes.first_name }}", "body": "Your offer: {{ campaign.name }}"}
BUTTONS = [{"id": "yes", "label": "Show me", "url": "https://shop.example.com/offer"}, {"id": "no", "label": "Later"}]


def popup_node(node_id: str = "pop", action: str = "page_view", **settings) -> tuple[str, str, dict]:
    return (node_id, "show_popup", {"action": action, "content": HELLO, "buttons": BUTTONS, **settings})


def people(h, count: int, **fields) -> list[int]:
    with h.transaction() as s:
        return add_profiles(s, count, attributes=lambda i: {"first_name": f"Ann{i}"}, **fields)


def site_client(app, api):
    """A client with a new `site` key, made through the API as an admin would."""
    made = ok(api.post("/api/api-keys", json={"name": "shop front", "role": "site"}), 201)
    assert made["role"] == "site"
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {made['key']}"
    return client


def fetch(client, profile_id: int, action: str = "page_view"):
    return ok(client.get(f"/api/profiles/{profile_id}/popups", query_string={"action": action}))["popup"]


def count_events(h, name: str) -> int:
    with h.session() as s:
        return s.scalar(select(func.count()).select_from(Event).where(Event.name == name))


def test_a_popup_is_handed_out_once_per_action_and_another_action_is_independent(harness, app, api):
    ids = people(harness, 3)
    cid = launch(harness, doc([ALL, popup_node(), popup_node("cart", action="add_to_cart")],
                              [("all", "out", "pop"), ("pop", "out", "cart")], name="Winter sale"))
    assert stats(harness, cid)["pop"]["left"] == {"out": 3} and stats(harness, cid)["cart"]["left"] == {"out": 3}
    site = site_client(app, api)

    first = fetch(site, ids[1])
    assert (first["title"], first["body"], first["action"]) == ("Hello Ann1", "Your offer: Winter sale", "page_view")
    assert first["buttons"] == BUTTONS and first["campaign_id"] == cid and len(first["token"]) >= 32
    assert fetch(site, ids[1]) is None, "handed out once, never again"
    cart = fetch(site, ids[1], "add_to_cart")
    assert cart["action"] == "add_to_cart" and cart["id"] != first["id"]
    assert fetch(site, ids[1], "add_to_cart") is None
    assert fetch(site, ids[1], "checkout") is None

    by_external = ok(site.get("/api/popups/next", query_string={"external_id": "p2", "action": "page_view"}))
    assert by_external["popup"]["title"] == "Hello Ann2"
    assert ok(site.get("/api/popups/next", query_string={"external_id": "p2", "action": "page_view"}))["popup"] is None
    assert ok(site.get("/api/popups/next", query_string={"external_id": "nobody", "action": "page_view"})) == \
        {"popup": None}
    assert fetch(site, 10**12) is None, "an unknown customer simply has no popup"
    with harness.session() as s:
        shown = s.scalar(select(func.count()).select_from(Popup).where(Popup.shown_at.is_not(None)))
    assert shown == 3


def test_the_oldest_popup_comes_first_and_an_expired_one_never_comes(harness, app, api):
    (pid,) = people(harness, 1)
    launch(harness, doc([ALL, popup_node(lifetime="1d")], [("all", "out", "pop")], name="Short"))
    harness.machine.advance(timedelta(hours=1))
    launch(harness, doc([ALL, popup_node(lifetime="3d", content={"title": "Second"})], [("all", "out", "pop")],
                        name="Long"))
    site = site_client(app, api)

    harness.machine.advance(timedelta(hours=25))  # the first one expired an hour ago
    assert fetch(site, pid)["title"] == "Second", "the expired one is skipped"
    assert fetch(site, pid) is None

    launch(harness, doc([ALL, popup_node(lifetime="2h", content={"title": "Third"})], [("all", "out", "pop")],
                        name="Third"))
    harness.machine.advance(timedelta(hours=2))
    assert fetch(site, pid) is None, "expired exactly at its lifetime"


def test_customers_who_refuse_app_communication_get_no_popup(harness, app, api):
    ids = people(harness, 6, push_opt_out=lambda i: i < 2)
    cid = launch(harness, doc([ALL, popup_node(), popup_node("any", action="any", app_permission_only=False)],
                              [("all", "out", "pop"), ("pop", "skipped", "any"), ("pop", "out", "any")]))
    assert stats(harness, cid)["pop"]["left"] == {"out": 4, "skipped": 2}
    assert stats(harness, cid)["any"]["left"] == {"out": 6}
    site = site_client(app, api)
    assert fetch(site, ids[0]) is None and fetch(site, ids[2]) is not None
    assert fetch(site, ids[0], "any") is not None, "without the setting, everyone gets one"


def test_a_popup_is_made_once_per_journey_and_node(harness):
    people(harness, 4)
    cid = launch(harness, doc([ALL, popup_node()], [("all", "out", "pop")]))
    with harness.transaction() as s:
        rows = s.execute(select(Enrollment.id, Enrollment.profile_id).where(Enrollment.campaign_id == cid)).all()
        version_id = s.scalar(select(Enrollment.version_id).where(Enrollment.campaign_id == cid).limit(1))
        ctx = NodeContext(session=s, now=harness.clock.now(), campaign_id=cid, version_id=version_id,
                          node_id="pop", document={}, account_tz=harness.rt.executor.account_tz)
        node = ShowPopup("pop", {"action": "page_view", "content": HELLO, "buttons": [], "lifetime": "3d",
                                 "app_permission_only": True})
        routed = node.process(Batch(ctx, [r[0] for r in rows], [r[1] for r in rows], [ctx.now] * len(rows)))
        assert len(routed["out"]) == 4
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Popup)) == 4, "the same journeys got no second popup"


def test_views_and_clicks_are_recorded_once_as_events_campaigns_react_to(harness, app, api):
    (pid,) = people(harness, 1)
    launch(harness, doc([ALL, popup_node()], [("all", "out", "pop")], name="Offer"))
    reacting = launch(harness, doc([("clicked", "event_trigger", {"event": "popup.click"}),
                                    ("pts", "award_points", {"points": 5})], [("clicked", "out", "pts")],
                                   name="Thanks for clicking"))
    popup = fetch(site_client(app, api), pid)
    anonymous = app.test_client()  # reports carry the popup's token, no key

    def report(**body):
        return anonymous.post("/api/popups/report", json={"token": popup["token"], **body})

    assert ok(report(event="view")) == {"recorded": True, "popup_id": popup["id"]}
    assert ok(report(event="view")) == {"recorded": False, "popup_id": popup["id"]}
    assert error_of(report(event="click", button="maybe"), 400, "invalid_input")["details"][0]["pointer"] == "/button"
    assert error_of(report(event="click"), 400, "invalid_input")["details"][0]["pointer"] == "/button"
    assert error_of(report(event="close"), 400, "invalid_input")["details"][0]["pointer"] == "/event"
    assert error_of(anonymous.post("/api/popups/report", json={"token": "x" * 32, "event": "view"}),
                    404, "not_found")
    assert count_events(harness, "popup.click") == 0
    assert ok(report(event="click", button="yes"))["recorded"] is True
    assert ok(report(event="click", button="no"))["recorded"] is False, "one click per popup"
    harness.machine.run_due()

    assert (count_events(harness, "popup.view"), count_events(harness, "popup.click")) == (1, 1)
    clicks = ok(api.get("/api/events", query_string={"event": "popup.click"}))["items"]
    assert clicks[0]["properties"] == {"popup_id": popup["id"], "campaign_id": popup["campaign_id"],
                                       "action": "page_view", "button_id": "yes"}
    assert stats(harness, reacting)["pts"]["left"] == {"out": 1} and points(harness)[pid] == 5
    with harness.session() as s:
        row = s.get(Popup, popup["id"])
        assert row.viewed_at == row.clicked_at == harness.clock.now()


def test_a_click_counts_as_a_view_too(harness, app, api):
    (pid,) = people(harness, 1)
    launch(harness, doc([ALL, popup_node()], [("all", "out", "pop")]))
    popup = fetch(site_client(app, api), pid)
    assert ok(app.test_client().post("/api/popups/report", json={"token": popup["token"], "event": "click",
                                                                 "button": "no"}))["recorded"] is True
    assert (count_events(harness, "popup.view"), count_events(harness, "popup.click")) == (1, 1)


def test_concurrent_requests_hand_each_popup_out_once(harness, app, api):
    (pid,) = people(harness, 1)
    for n in range(3):
        launch(harness, doc([ALL, popup_node()], [("all", "out", "pop")], name=f"Campaign {n}"))
    site = site_client(app, api)
    key = site.environ_base["HTTP_AUTHORIZATION"]
    def ask() -> dict | None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = key
        return fetch(client, pid)

    got = at_once(8, ask)
    handed = [p["id"] for p in got if p is not None]
    assert len(handed) == 3 and len(set(handed)) == 3, got


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/campaigns"), ("GET", "/api/profiles"), ("GET", "/api/auth/me"), ("GET", "/api/events"),
    ("POST", "/api/events"), ("GET", "/api/api-keys"), ("POST", "/api/campaigns"), ("GET", "/metrics"),
    ("GET", "/api/polls"), ("GET", "/"),
])
def test_a_site_key_is_refused_everywhere_but_the_popups(harness, app, api, method, path):
    site = site_client(app, api)
    error_of(site.open(path, method=method, json={} if method == "POST" else None), 403, "forbidden")
    assert site.get("/api/popups/next", query_string={"external_id": "x", "action": "a"}).status_code == 200


def test_a_site_key_gets_no_live_statistics(harness, app, api):
    from server import create_app

    made = ok(api.post("/api/api-keys", json={"name": "shop", "role": "site"}), 201)
    flask_app, socketio = create_app(harness.rt, message_queue=False)
    assert not socketio.test_client(flask_app, auth={"token": made["key"]}).is_connected()
    admin = ok(api.post("/api/api-keys", json={"name": "ops", "role": "viewer"}), 201)
    assert socketio.test_client(flask_app, auth={"token": admin["key"]}).is_connected()


def test_bad_fetches_name_the_argument(harness, app, api):
    site = site_client(app, api)
    assert error_of(site.get("/api/popups/next", query_string={"external_id": "x"}), 400,
                    "invalid_input")["details"][0]["pointer"] == "action"
    assert error_of(site.get("/api/popups/next", query_string={"action": "a"}), 400,
                    "invalid_input")["details"][0]["pointer"] == "profile_id"
    assert error_of(site.get("/api/popups/next", query_string={"action": "a", "profile_id": "x"}), 400,
                    "invalid_input")["details"][0]["pointer"] == "profile_id"
    error_of(app.test_client().get("/api/popups/next?action=a&external_id=x"), 401, "unauthorized")


def test_the_embed_script_and_the_cors_answers(harness, app, api):
    anonymous = app.test_client()
    script = anonymous.get("/embed/popup.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "textContent" in script.get_data(as_text=True) and "innerHTML" not in script.get_data(as_text=True)
    assert script.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert script.headers["X-Content-Type-Options"] == "nosniff"

    preflight = anonymous.options("/api/popups/next", headers={
        "Origin": "https://shop.example.com", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert anonymous.options("/api/popups/report").headers["Access-Control-Allow-Origin"] == "*"
    refused = anonymous.get("/api/popups/next?action=a&external_id=x", headers={"Origin": "https://shop.example.com"})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"

    for other in ("/api/campaigns", "/api/profiles/1/notifications"):
        answer = api.get(other, headers={"Origin": "https://shop.example.com"})
        assert "Access-Control-Allow-Origin" not in answer.headers
        assert anonymous.options(other).status_code == 401, "no preflight pass for other endpoints"


def test_popup_settings_are_checked_when_the_campaign_is_saved(api):
    def problems(*node) -> set[str]:
        document = doc([ALL, popup_node(**node[0])], [("all", "out", "pop")])
        answer = ok(api.post("/api/campaigns/validate", json=document))
        return {p["pointer"] for p in answer["problems"] if p.get("severity") != "warning"}

    assert problems({}) == set()
    twins = {"buttons": [{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]}
    assert "/nodes/1/settings/buttons/1/id" in problems(twins)
    assert any(p.startswith("/nodes/1/settings/content") for p in problems({"content": {"title": "Hi {{ profile.("}}))
    assert any(p.startswith("/nodes/1/settings/buttons/0") for p in problems(
        {"buttons": [{"id": "x", "label": "X", "url": "javascript:alert(1)"}]}))
    assert any(p.startswith("/nodes/1/settings/content") for p in problems(
        {"content": {"title": "T", "image": "data:image/png;base64,AAAA"}}))
