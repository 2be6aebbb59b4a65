"""Events through the HTTP API, on SQLite and PostgreSQL with a real Redis.

What senders and marketers rely on: events start journeys by the trigger's frequency (also
within one batch), unknown customers are created once, a batch with one bad item stores
nothing and names every bad item, stop events end journeys where they stand, goal events
convert journeys within the goal period (never the journey they start), the history filters
and pages, and event types list the campaigns they start, stop or convert.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.core.clock import iso
from engine.core.models import Event, EventType, Profile
from tests.served import CLI, call, free_port, stop, wait_for
from tests.support import doc

# --------------------------------------------------------------------------- helpers


def launched(api, document: dict) -> int:
    response = api.post("/api/campaigns", json=document)
    assert response.status_code == 201, response.get_data(as_text=True)
    campaign_id = response.get_json()["id"]
    response = api.post(f"/api/campaigns/{campaign_id}/launch")
    assert response.status_code == 200, response.get_data(as_text=True)
    return campaign_id


def send(api, name: str, profile: dict, **extra) -> dict:
    response = api.post("/api/events", json={"event": name, "profile": profile, **extra})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def send_batch(api, events: list[dict]) -> dict:
    response = api.post("/api/events/batch", json={"events": events})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def refused(response, status: int = 400) -> list[str]:
    """The pointers an error names (asserting the error shape)."""
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input" and error["message"]
    return [d["pointer"] for d in error["details"]]


def node_stats(api, campaign_id: int) -> dict:
    response = api.get(f"/api/campaigns/{campaign_id}/stats")
    assert response.status_code == 200
    return response.get_json()


def history(api, **args) -> dict:
    response = api.get("/api/events", query_string=args)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def points_of(api, profile_id: int) -> int:
    response = api.get(f"/api/profiles/{profile_id}")
    assert response.status_code == 200
    return response.get_json()["points"]


def profile_id_of(api, external_id: str) -> int:
    return history(api, external_id=external_id, limit=1)["items"][0]["profile_id"]


def order_flow(frequency: str) -> dict:
    """On each `order` (by `frequency`), one point."""
    return doc([("t", "event_trigger", {"event": "order", "frequency": frequency, "period": "1d"}),
                ("pts", "award_points", {"points": 1})],
               [("t", "out", "pts")], name=f"Orders ({frequency})")


def abandoned_cart() -> dict:
    """Who puts something in the cart gets 5 points an hour later, unless they order first."""
    return doc([("cart", "event_trigger", {"event": "cart"}), ("w", "wait", {"amount": 1, "unit": "hours"}),
                ("remind", "award_points", {"points": 5})],
               [("cart", "out", "w"), ("w", "out", "remind")], name="Abandoned cart", stop_events=["order"])


def at(harness, minutes: float) -> str:
    """An ISO timestamp `minutes` from the virtual now."""
    return iso(harness.clock.now() + timedelta(minutes=minutes))


# --------------------------------------------------------------------------- frequencies

FREQUENCIES = ("each", "once", "period")


@pytest.mark.parametrize("delivery", ["one by one", "one batch"])
def test_three_orders_within_an_hour_start_3_1_and_1_journeys_by_frequency(api, harness, delivery):
    campaigns = {f: launched(api, order_flow(f)) for f in FREQUENCIES}
    customer = {"external_id": "c1"}
    if delivery == "one by one":
        answers = []
        for _ in range(3):
            answers.append(send(api, "order", customer))
            harness.clock.advance(timedelta(minutes=20))
        assert [a["journeys_started"] for a in answers] == [3, 1, 1]
        assert [a["profiles_created"] for a in answers] == [1, 0, 0]
    else:
        answer = send_batch(api, [{"event": "order", "profile": customer, "timestamp": at(harness, m)}
                                  for m in (-40, -20, 0)])
        assert answer == {"accepted": 3, "profiles_created": 1, "journeys_started": 5, "journeys_stopped": 0,
                          "conversions": 0}
    harness.machine.run_due()
    entered = {f: node_stats(api, cid)["nodes"]["t"]["entered"] for f, cid in campaigns.items()}
    assert entered == {"each": 3, "once": 1, "period": 1}
    assert points_of(api, profile_id_of(api, "c1")) == 5


def test_once_per_period_lets_a_customer_in_again_only_after_the_period(api, harness):
    campaigns = {f: launched(api, order_flow(f)) for f in FREQUENCIES}
    customer = {"external_id": "c1"}
    for _ in range(3):
        send(api, "order", customer)
        harness.machine.advance(timedelta(minutes=20))
    harness.machine.advance(timedelta(hours=22, minutes=59))  # 23h59m after the first order
    assert send(api, "order", customer)["journeys_started"] == 1  # each only
    harness.machine.advance(timedelta(minutes=2))  # a day and a minute after the first
    assert send(api, "order", customer)["journeys_started"] == 2  # each, and period again
    harness.machine.run_due()
    entered = {f: node_stats(api, cid)["nodes"]["t"]["entered"] for f, cid in campaigns.items()}
    assert entered == {"each": 5, "once": 1, "period": 2}


def test_a_batch_spanning_more_than_the_period_admits_once_per_period(api, harness):
    campaign_id = launched(api, order_flow("period"))
    customer = {"external_id": "c1"}
    harness.machine.advance(timedelta(days=3))
    times = [-60 * 50, -60 * 49, -60 * 25, -60 * 2, 0]  # hours ago: 50, 49, 25, 2, now
    answer = send_batch(api, [{"event": "order", "profile": customer, "timestamp": at(harness, m)} for m in times])
    assert answer["journeys_started"] == 3  # 50h ago, 25h ago, now
    assert node_stats(api, campaign_id)["nodes"]["t"]["entered"] == 3


# --------------------------------------------------------------------------- customers


def test_unknown_customers_are_created_once_however_often_a_batch_names_them(api, harness):
    known = send(api, "signup", {"external_id": "known"})
    assert known["profiles_created"] == 1
    named = [{"email": "New@Example.com"}, {"email": "new@example.com"}, {"email": " NEW@example.com "},
             {"email": "new@example.com"}, {"email": "new@example.com"}]
    answer = send_batch(api, [{"event": "view", "profile": p} for p in named]
                        + [{"event": "view", "profile": {"external_id": "known"}}])
    assert answer["accepted"] == 6 and answer["profiles_created"] == 1
    views = history(api, event="view")["items"]
    assert len(views) == 6 and len({v["profile_id"] for v in views}) == 2
    assert send_batch(api, [{"event": "view", "profile": {"email": "new@example.com"}}])["profiles_created"] == 0
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Profile)) == 2


def test_the_params_form_becomes_the_events_properties(api):
    params = [{"name": "sku", "value": "A-1"}, {"name": "qty", "value": 2}, {"name": "gift", "value": None}]
    single = send(api, "order", {"external_id": "c1"}, params=params)
    send_batch(api, [{"event": "order", "profile": {"external_id": "c2"}, "params": params[:1]},
                     {"event": "order", "profile": {"external_id": "c3"}, "properties": {"sku": "B-2"}}])
    items = {i["external_id"]: i for i in history(api)["items"]}
    assert items["c1"]["id"] == single["id"]
    assert items["c1"]["properties"] == {"sku": "A-1", "qty": 2, "gift": None}
    assert items["c2"]["properties"] == {"sku": "A-1"}
    assert items["c3"]["properties"] == {"sku": "B-2"}
    repeated = api.post("/api/events", json={"event": "order", "profile": {"external_id": "c1"},
                                             "params": [{"name": "sku", "value": 1}, {"name": "sku", "value": 2}]})
    assert refused(repeated) == ["/params/1/name"]
    both = api.post("/api/events", json={"event": "order", "profile": {"external_id": "c1"},
                                         "params": params, "properties": {}})
    assert refused(both) == ["/params"]


# --------------------------------------------------------------------------- refusals


def test_a_batch_with_bad_items_stores_nothing_and_names_every_bad_item(api, harness):
    campaign_id = launched(api, order_flow("each"))
    good = {"event": "order", "profile": {"external_id": "c1"}}
    batch = [good,
             {"event": "order", "profile": {"email": ""}},
             good,
             {"profile": {"external_id": "c2"}},
             {"event": "x" * 129, "profile": {"external_id": "c3"}, "timestamp": "yesterday"},
             {"event": "order", "profile": {"external_id": "c4"}, "properties": [1], "colour": "red"},
             "order"]
    response = api.post("/api/events/batch", json={"events": batch})
    assert refused(response) == ["/events/1/profile/email", "/events/3/event", "/events/4/event",
                                 "/events/4/timestamp", "/events/5/colour", "/events/5/properties", "/events/6"]
    assert "5 of 7 events" in response.get_json()["error"]["message"]
    assert history(api)["items"] == []
    assert api.get("/api/event-types").get_json()["items"] == []
    assert node_stats(api, campaign_id)["nodes"] == {}
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Profile)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_batch_size_limits(api, harness):
    too_many = [{"event": "view", "profile": {"external_id": f"c{i}"}} for i in range(10_001)]
    response = api.post("/api/events/batch", json={"events": too_many})
    assert refused(response, status=413) == ["/events"]
    assert refused(api.post("/api/events/batch", json={"events": []})) == ["/events"]
    assert refused(api.post("/api/events/batch", json=too_many[:2])) == [""]  # a list, not {"events": [...]}
    assert send_batch(api, too_many[:10_000])["profiles_created"] == 10_000
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 10_000


def test_event_names_and_timestamps_are_checked(api, harness):
    customer = {"external_id": "c1"}
    assert refused(api.post("/api/events", json={"event": "", "profile": customer})) == ["/event"]
    assert refused(api.post("/api/events", json={"event": "e" * 129, "profile": customer})) == ["/event"]
    assert send(api, "e" * 128, customer)["accepted"] == 1
    late = api.post("/api/events", json={"event": "order", "profile": customer, "timestamp": at(harness, 5.1)})
    assert refused(late) == ["/timestamp"]
    assert refused(api.post("/api/events", json={"event": "order", "profile": {}})) == ["/profile"]
    assert refused(api.post("/api/events", json={"event": "or\x00der", "profile": customer})) == ["/event"]
    not_json = api.post("/api/events", json={"event": "order", "profile": customer, "properties": {"x": float("nan")}})
    assert refused(not_json) == ["/properties/x"]  # the parser names where (engine/core/json_input.py)
    huge = api.post("/api/events", json={"event": "order", "profile": customer, "properties": {"x": "x" * 70_000}})
    assert refused(huge) == ["/properties"]
    nul = api.post("/api/events", json={"event": "order", "profile": {"external_id": "a\x00b"}})
    assert refused(nul) == ["/profile/external_id"]
    nul_property = api.post("/api/events",
                            json={"event": "order", "profile": customer, "properties": {"nul": "a\x00b"}})
    assert refused(nul_property) == ["/properties/nul"]  # no text column anywhere takes NUL
    soon = send(api, "order", customer, timestamp=at(harness, 4.9))
    earlier = send(api, "order", customer, timestamp="2026-11-30T09:30:00+01:00")
    stamps = {i["id"]: i["timestamp"] for i in history(api, event="order")["items"]}
    assert stamps == {soon["id"]: at(harness, 4.9), earlier["id"]: "2026-11-30T08:30:00Z"}


# --------------------------------------------------------------------------- stop events


def test_an_order_within_the_hour_stops_the_abandoned_cart_reminder(api, harness):
    campaign_id = launched(api, abandoned_cart())
    assert send(api, "cart", {"external_id": "buyer"})["journeys_started"] == 1
    assert send(api, "cart", {"external_id": "browser"})["journeys_started"] == 1
    harness.machine.run_due()
    harness.machine.advance(timedelta(minutes=30))
    answer = send(api, "order", {"external_id": "buyer"})
    assert answer["journeys_stopped"] == 1 and answer["journeys_started"] == 0
    assert send(api, "order", {"external_id": "buyer"})["journeys_stopped"] == 0  # already ended
    harness.machine.advance(timedelta(hours=1))
    stats = node_stats(api, campaign_id)["nodes"]
    assert stats["w"] == {"entered": 2, "waiting": 0, "left": {"@exited": 1, "out": 1}}
    assert stats["remind"]["entered"] == 1
    assert points_of(api, profile_id_of(api, "buyer")) == 0
    assert points_of(api, profile_id_of(api, "browser")) == 5


def test_stop_events_also_end_journeys_in_a_paused_campaign(api, harness):
    campaign_id = launched(api, abandoned_cart())
    send(api, "cart", {"external_id": "c1"})
    harness.machine.run_due()
    assert api.post(f"/api/campaigns/{campaign_id}/pause").status_code == 200
    assert send(api, "cart", {"external_id": "c2"})["journeys_started"] == 0  # paused: nobody new
    assert send(api, "order", {"external_id": "c1"})["journeys_stopped"] == 1
    assert api.post(f"/api/campaigns/{campaign_id}/resume").status_code == 200
    harness.machine.advance(timedelta(hours=2))
    assert node_stats(api, campaign_id)["nodes"]["w"]["left"] == {"@exited": 1}
    assert points_of(api, profile_id_of(api, "c1")) == 0


def test_within_a_batch_a_stop_event_applies_in_time_order(api, harness):
    campaign_id = launched(api, abandoned_cart())
    answer = send_batch(api, [
        {"event": "order", "profile": {"external_id": "late"}, "timestamp": at(harness, -1)},
        {"event": "cart", "profile": {"external_id": "late"}, "timestamp": at(harness, -10)},
        {"event": "order", "profile": {"external_id": "early"}, "timestamp": at(harness, -10)},
        {"event": "cart", "profile": {"external_id": "early"}, "timestamp": at(harness, -1)},
    ])
    assert answer["journeys_started"] == 2 and answer["journeys_stopped"] == 1
    harness.machine.advance(timedelta(hours=2))
    assert points_of(api, profile_id_of(api, "late")) == 0  # ordered after putting in the cart
    assert points_of(api, profile_id_of(api, "early")) == 5  # ordered before: a new cart
    assert node_stats(api, campaign_id)["nodes"]["cart"]["left"] == {"@exited": 1, "out": 1}


def test_a_stop_event_from_before_a_journey_began_does_not_end_it(api, harness):
    launched(api, abandoned_cart())
    send(api, "cart", {"external_id": "c1"})
    harness.machine.advance(timedelta(minutes=3))
    assert send(api, "order", {"external_id": "c1"}, timestamp=at(harness, -4))["journeys_stopped"] == 0
    assert send(api, "order", {"external_id": "c1"}, timestamp=at(harness, -2))["journeys_stopped"] == 1


# --------------------------------------------------------------------------- goals


def test_a_goal_event_converts_journeys_within_the_goal_period_only(api, harness):
    document = doc([("t", "event_trigger", {"event": "signup"}), ("w", "wait", {"amount": 3, "unit": "days"}),
                    ("pts", "award_points", {"points": 1})],
                   [("t", "out", "w"), ("w", "out", "pts")], name="Onboarding",
                   goal={"event": "order", "within": "1d"})
    campaign_id = launched(api, document)
    send_batch(api, [{"event": "signup", "profile": {"external_id": c}} for c in ("quick", "slow")])
    harness.machine.advance(timedelta(hours=2))
    assert send(api, "order", {"external_id": "quick"})["conversions"] == 1
    assert send(api, "order", {"external_id": "quick"})["conversions"] == 0  # converted already
    harness.machine.advance(timedelta(days=1))
    assert send(api, "order", {"external_id": "slow"})["conversions"] == 0  # 26 hours after signing up
    assert send(api, "order", {"external_id": "stranger"})["conversions"] == 0
    assert node_stats(api, campaign_id)["converted"] == 1


def test_the_event_that_starts_a_journey_does_not_convert_it(api, harness):
    document = doc([("t", "event_trigger", {"event": "order"}), ("pts", "award_points", {"points": 1})],
                   [("t", "out", "pts")], name="Buy again", goal={"event": "order", "within": "7d"})
    campaign_id = launched(api, document)
    first = send(api, "order", {"external_id": "c1"})
    assert (first["journeys_started"], first["conversions"]) == (1, 0)
    harness.machine.advance(timedelta(hours=1))
    second = send(api, "order", {"external_id": "c1"})
    assert (second["journeys_started"], second["conversions"]) == (1, 1)  # the first journey converts
    batch = send_batch(api, [{"event": "order", "profile": {"external_id": "c2"}, "timestamp": at(harness, m)}
                             for m in (-30, -20, -10)])
    assert (batch["journeys_started"], batch["conversions"]) == (3, 2)  # each order converts the one before
    assert node_stats(api, campaign_id)["converted"] == 3


# --------------------------------------------------------------------------- history


def test_event_history_filters_and_pages_newest_first(api, harness):
    start = harness.clock.now()
    sent = []
    for minute, (name, customer) in enumerate([("order", "a"), ("order", "b"), ("view", "a"), ("order", "a"),
                                               ("view", "b")]):
        sent.append(send(api, name, {"external_id": customer}, properties={"n": minute})["id"])
        harness.clock.advance(timedelta(minutes=1))
    newest_first = list(reversed(sent))
    assert [i["id"] for i in history(api)["items"]] == newest_first
    assert [i["id"] for i in history(api, event="order")["items"]] == [sent[3], sent[1], sent[0]]
    assert [i["id"] for i in history(api, external_id="a")["items"]] == [sent[3], sent[2], sent[0]]
    b = profile_id_of(api, "b")
    assert [i["id"] for i in history(api, profile_id=b)["items"]] == [sent[4], sent[1]]
    window = history(api, since=iso(start + timedelta(minutes=1)), until=iso(start + timedelta(minutes=3)))
    assert [i["id"] for i in window["items"]] == [sent[2], sent[1]]
    assert history(api, event="order", external_id="b")["items"][0]["properties"] == {"n": 1}

    seen, before, pages = [], None, 0
    while True:
        page = history(api, limit=2, **({"before": before} if before else {}))
        seen += [i["id"] for i in page["items"]]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
    assert seen == newest_first and pages == 3

    for arg, value in [("since", "yesterday"), ("until", "2026-13-01"), ("limit", "many"), ("limit", "0"),
                       ("profile_id", "b"), ("profile_id", str(2**64)), ("before", "999999"), ("before", "-1"),
                       ("event", "a\x00b"), ("external_id", "a\x00b")]:
        assert refused(api.get("/api/events", query_string={arg: value})) == [arg], (arg, value)
    assert len(history(api, limit=100_000)["items"]) == 5  # clamped to 500, not refused


# --------------------------------------------------------------------------- event types


def test_event_types_are_registered_on_use_and_list_their_campaigns(api, harness):
    cart = launched(api, abandoned_cart())
    draft = api.post("/api/campaigns", json=doc(
        [("t", "event_trigger", {"event": "signup"}), ("pts", "award_points", {"points": 1})], [("t", "out", "pts")],
        name="Welcome", goal={"event": "order", "within": "7d"})).get_json()["id"]
    first = harness.clock.now()
    send(api, "order", {"external_id": "c1"})
    created = api.post("/api/event-types", json={"name": "cart", "description": "Put something in the cart"})
    assert created.status_code == 201
    assert created.get_json() == {"name": "cart", "description": "Put something in the cart",
                                  "created_at": iso(first), "last_seen_at": None,
                                  "campaigns": [{"id": cart, "name": "Abandoned cart", "status": "active",
                                                 "role": "start"}]}
    harness.clock.advance(timedelta(hours=1))
    send(api, "order", {"external_id": "c1"})
    send(api, "order", {"external_id": "c1"}, timestamp=iso(first - timedelta(days=1)))  # never moves it back
    items = api.get("/api/event-types").get_json()["items"]
    assert [t["name"] for t in items] == ["cart", "order"]
    order = items[1]
    assert order["last_seen_at"] == iso(first + timedelta(hours=1)) and order["created_at"] == iso(first)
    assert order["campaigns"] == [{"id": cart, "name": "Abandoned cart", "status": "active", "role": "stop"},
                                  {"id": draft, "name": "Welcome", "status": "draft", "role": "goal"}]
    assert api.get("/api/event-types/order").get_json() == order

    taken = api.post("/api/event-types", json={"name": "order"})
    assert taken.status_code == 409 and taken.get_json()["error"]["code"] == "name_taken"
    assert refused(api.post("/api/event-types", json={"name": ""})) == ["/name"]
    assert refused(api.post("/api/event-types", json={"name": "x", "colour": "red"})) == ["/colour"]
    patched = api.patch("/api/event-types/order", json={"description": "A completed purchase"})
    assert patched.status_code == 200 and patched.get_json()["description"] == "A completed purchase"
    assert refused(api.patch("/api/event-types/order", json={"name": "purchase"})) == ["/name", "/description"]
    assert refused(api.patch("/api/event-types/order", json={"description": 5})) == ["/description"]
    assert api.get("/api/event-types/order").get_json()["description"] == "A completed purchase"
    assert api.get("/api/event-types/nope").status_code == 404
    assert api.get("/api/event-types/no%00pe").status_code == 400
    assert api.patch("/api/event-types/nope", json={"description": ""}).status_code == 404
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(EventType)) == 2


# --------------------------------------------------------------------------- a real server








@pytest.mark.processes
def test_a_served_process_takes_events_and_runs_the_journeys_they_start(engine, redis_conn, database_url,
                                                                        redis_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CC_INSTANCE_DIR": str(tmp_path),
           "CC_QUEUE": f"events-{uuid.uuid4().hex[:8]}", "CC_BUCKET_SECONDS": "1", "CC_SWEEP_SECONDS": "2"}
    made = subprocess.run([CLI, "create-api-key", "events test", "--role", "admin"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    output = None
    try:
        _serve_and_check(base, key)
    except AssertionError as exc:
        output = stop(server)
        raise AssertionError(f"{exc}\n--- server output ---\n{output[-5000:]}") from None
    finally:
        output = output if output is not None else stop(server)
    assert "Traceback" not in output, output


def _call(base: str, key: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    return call(base, path, body, key)


def _serve_and_check(base: str, key: str) -> None:
    wait_for(lambda: _call(base, key, "/api/node-types")[0] == 200, what="the server to answer")
    status, campaign = _call(base, key, "/api/campaigns", order_flow("once"))
    assert status == 201, campaign
    assert _call(base, key, f"/api/campaigns/{campaign['id']}/launch", {})[0] == 200
    customers = [{"external_id": "c1"}, {"email": "c2@example.com"}, {"external_id": "c1"}]
    batch = {"events": [{"event": "order", "profile": c} for c in customers]}
    status, answer = _call(base, key, "/api/events/batch", batch)
    assert (status, answer) == (200, {"accepted": 3, "profiles_created": 2, "journeys_started": 2,
                                      "journeys_stopped": 0, "conversions": 0})
    status, single = _call(base, key, "/api/events", {"event": "order", "profile": {"external_id": "c1"}})
    assert status == 201 and single["journeys_started"] == 0 and isinstance(single["id"], int), single
    assert _call(base, key, "/api/events/batch", {"events": [{"event": "order"}]})[0] == 400
    assert _call(base, key, "/api/events?event=order")[1]["items"][0]["id"] == single["id"]

    def journeys_done():
        nodes = _call(base, key, f"/api/campaigns/{campaign['id']}/stats")[1]["nodes"]
        return nodes.get("pts", {}).get("entered") == 2 and nodes
    wait_for(journeys_done, what="the server's worker to run the journeys", timeout=60)
    assert _call(base, "not-a-key", "/api/events")[0] == 401




def test_the_sweeper_deletes_events_past_their_retention(harness, api):
    from dataclasses import replace

    from engine.core.models import Event

    for when in ("2026-09-01T08:00:00Z", "2026-11-20T08:00:00Z"):
        assert api.post("/api/events", json={"event": "visit", "profile": {"external_id": "r1"},
                                             "timestamp": when}).status_code == 201
    harness.rt.sweep()
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 2, "0 days keeps every event"
    harness.rt.settings = replace(harness.rt.settings, event_retention_days=30)
    assert harness.rt.sweep()["events_expired"] == 1
    with harness.session() as s:
        assert [e.occurred_at.month for e in s.scalars(select(Event))] == [11]
