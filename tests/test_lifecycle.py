"""A campaign's life through the REST API: save, save and launch, pause and resume, new
versions while customers are in flight, stop, clone, delete, suspension, and lists.

On SQLite and PostgreSQL with a real Redis; waits run on the virtual clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.core.models import Campaign, CampaignVersion, Enrollment, ProviderConfig
from engine.journeys import events
from engine.journeys.campaigns import with_node_versions
from tests.support import add_profiles, doc, ok, points, positions

ALL = ("all", "select_segment", {"source": "all"})


def waiting_flow(name: str = "Points after a day", bonus: int = 1, **extra) -> dict:
    return doc([ALL, ("wait", "wait", {"amount": 1, "unit": "days"}), ("pts", "award_points", {"points": bonus})],
               [("all", "out", "wait"), ("wait", "out", "pts")], name=name, **extra)


def event_flow(bonus: int, name: str = "Signup bonus") -> dict:
    return doc([("t", "event_trigger", {"event": "signup"}), ("wait", "wait", {"amount": 1, "unit": "days"}),
                ("pts", "award_points", {"points": bonus})],
               [("t", "out", "wait"), ("wait", "out", "pts")], name=name)




def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code
    return response.get_json()["error"]


def counts(harness) -> tuple[int, int, int]:
    with harness.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Campaign, CampaignVersion, Enrollment))


def signup(harness, profile_ids: list[int]) -> None:
    with harness.transaction() as s:
        for pid in profile_ids:
            events.record_event(s, pid, "signup", {}, harness.clock.now())
    harness.machine.run_due()


# --------------------------------------------------------------------------- save / save and launch


def test_save_keeps_a_campaign_inactive_and_save_and_launch_starts_it(api, harness):
    with harness.transaction() as s:
        add_profiles(s, 12)
    saved = ok(api.post("/api/campaigns", json=waiting_flow("Saved only")), 201)
    assert saved["status"] == "draft" and "entered" not in saved
    launched = ok(api.post("/api/campaigns?launch=true", json=waiting_flow("Saved and launched")), 201)
    assert (launched["status"], launched["entered"]) == ("active", 12)
    harness.machine.run_due()
    assert positions(harness, saved["id"]) == {}
    assert positions(harness, launched["id"]) == {("wait", "active"): 12}

    relaunched = ok(api.put(f"/api/campaigns/{saved['id']}?launch=1", json=waiting_flow("Saved, then launched")))
    assert (relaunched["status"], relaunched["entered"], relaunched["version"]) == ("active", 12, 2)


def test_a_save_and_launch_that_cannot_launch_stores_nothing(api, harness):
    missing_segment = doc([("seg", "select_segment", {"source": "segment", "segment_id": 999}),
                           ("pts", "award_points", {"points": 1})], [("seg", "out", "pts")])
    error(api.post("/api/campaigns?launch=true", json=missing_segment), 409, "invalid_state")
    assert counts(harness) == (0, 0, 0)
    draft = ok(api.post("/api/campaigns", json=waiting_flow()), 201)
    error(api.put(f"/api/campaigns/{draft['id']}?launch=true", json=missing_segment), 409, "invalid_state")
    current = ok(api.get(f"/api/campaigns/{draft['id']}"))
    assert (current["status"], current["version"], current["document"]["name"]) == ("draft", 1, "Points after a day")


# --------------------------------------------------------------------------- pause / resume / stop


def test_pause_holds_everyone_where_they_are_and_resume_continues(api, harness):
    with harness.transaction() as s:
        add_profiles(s, 30)
    cid = ok(api.post("/api/campaigns?launch=true", json=waiting_flow()), 201)["id"]
    harness.machine.run_due()
    assert ok(api.post(f"/api/campaigns/{cid}/pause"))["status"] == "paused"
    harness.machine.advance(timedelta(days=3))
    assert positions(harness, cid) == {("wait", "active"): 30}, "nobody moves while paused"
    assert set(points(harness).values()) == {0}
    error(api.post(f"/api/campaigns/{cid}/pause"), 409, "invalid_state")

    assert ok(api.post(f"/api/campaigns/{cid}/resume"))["status"] == "active"
    harness.machine.run_due()
    assert positions(harness, cid) == {("pts", "done"): 30}
    assert set(points(harness).values()) == {1}
    stats = ok(api.get(f"/api/campaigns/{cid}/stats"))
    assert stats["nodes"]["wait"] == {"entered": 30, "waiting": 0, "left": {"out": 30}}
    assert stats["entered"] == 30


def test_stop_ends_every_journey_and_nothing_moves_afterwards(api, harness):
    with harness.transaction() as s:
        add_profiles(s, 8)
    cid = ok(api.post("/api/campaigns?launch=true", json=waiting_flow()), 201)["id"]
    harness.machine.run_due()
    assert ok(api.post(f"/api/campaigns/{cid}/stop"))["status"] == "stopped"
    harness.machine.advance(timedelta(days=2))
    assert positions(harness, cid) == {("wait", "exited"): 8}
    assert set(points(harness).values()) == {0}
    error(api.post(f"/api/campaigns/{cid}/resume"), 409, "invalid_state")
    error(api.post(f"/api/campaigns/{cid}/launch"), 409, "invalid_state")


# --------------------------------------------------------------------------- versions


def test_an_edit_leaves_customers_in_flight_on_their_version(api, harness):
    with harness.transaction() as s:
        ids = add_profiles(s, 10)
    early, late = ids[:6], ids[6:]
    cid = ok(api.post("/api/campaigns?launch=true", json=event_flow(bonus=1)), 201)["id"]
    signup(harness, early)
    assert ok(api.put(f"/api/campaigns/{cid}", json=event_flow(bonus=5)))["version"] == 2
    signup(harness, late)
    versions = ok(api.get(f"/api/campaigns/{cid}/versions"))["items"]
    assert [(v["number"], v["current"], v["in_flight"]) for v in versions] == [(2, True, 4), (1, False, 6)]

    harness.machine.advance(timedelta(days=1, minutes=5))
    got = points(harness)
    assert [got[p] for p in early] == [1] * 6, "the first six finish the version they started"
    assert [got[p] for p in late] == [5] * 4
    old = ok(api.get(f"/api/campaigns/{cid}/versions/1"))
    assert old["document"]["nodes"][2]["settings"] == {"points": 1}
    error(api.get(f"/api/campaigns/{cid}/versions/9"), 404, "not_found")


def test_saving_the_same_document_makes_no_version_and_restore_makes_a_new_one(api):
    cid = ok(api.post("/api/campaigns", json=waiting_flow()), 201)["id"]
    assert ok(api.put(f"/api/campaigns/{cid}", json=waiting_flow()))["version"] == 1
    assert ok(api.put(f"/api/campaigns/{cid}", json=waiting_flow(bonus=7)))["version"] == 2
    restored = ok(api.post(f"/api/campaigns/{cid}/versions/1/restore"))
    assert restored["version"] == 3 and restored["document"]["nodes"][2]["settings"] == {"points": 1}
    assert [v["number"] for v in ok(api.get(f"/api/campaigns/{cid}/versions"))["items"]] == [3, 2, 1]


# --------------------------------------------------------------------------- clone and delete


def test_clone_copies_the_document_and_settings_into_a_new_draft(api, harness):
    with harness.transaction() as s:
        add_profiles(s, 3)
    source = waiting_flow("Winter sale", tags=["sale", "q4"], description="Cold outside",
                          goal={"event": "purchase", "within": "7d"}, settings={"timezone": "Europe/Paris"})
    original = ok(api.post("/api/campaigns?launch=true", json=source), 201)
    copy = ok(api.post(f"/api/campaigns/{original['id']}/clone"), 201)
    assert copy["id"] != original["id"] and copy["status"] == "draft" and copy["name"] == "Winter sale (copy)"
    assert copy["document"] == with_node_versions({**source, "name": "Winter sale (copy)"})
    assert copy["tags"] == ["sale", "q4"]
    named = ok(api.post(f"/api/campaigns/{original['id']}/clone", json={"name": "Spring sale"}), 201)
    assert named["name"] == "Spring sale"
    error(api.post(f"/api/campaigns/{original['id']}/clone", json={"name": ""}), 400, "invalid_input")
    error(api.post("/api/campaigns/999/clone"), 404, "not_found")
    assert counts(harness)[0] == 3
    assert ok(api.get(f"/api/campaigns/{original['id']}"))["status"] == "active", "the original is untouched"


def test_delete_asks_for_the_campaign_to_be_stopped_first(api, harness):
    with harness.transaction() as s:
        add_profiles(s, 5)
    cid = ok(api.post("/api/campaigns?launch=true", json=waiting_flow()), 201)["id"]
    harness.machine.run_due()
    err = error(api.delete(f"/api/campaigns/{cid}"), 409, "invalid_state")
    assert "stop it" in err["message"] and err["details"][0]["pointer"] == "/status"
    assert counts(harness) == (1, 1, 5)
    ok(api.post(f"/api/campaigns/{cid}/stop"))
    assert ok(api.delete(f"/api/campaigns/{cid}")) == {"deleted": cid}
    assert counts(harness) == (0, 0, 0)
    error(api.get(f"/api/campaigns/{cid}"), 404, "not_found")
    draft = ok(api.post("/api/campaigns", json=waiting_flow()), 201)["id"]
    ok(api.delete(f"/api/campaigns/{draft}"))  # a draft never moved anyone


# --------------------------------------------------------------------------- suspension


def test_removing_a_provider_suspends_and_resume_waits_for_a_fix(api, harness):
    with harness.transaction() as s:
        add_profiles(s, 4)
        mail = ProviderConfig(channel="email", kind="sendgrid", name="Mail", is_default=True,
                              settings={"from_email": "news@example.com"}, secrets={"api_key": "SG.x"})
        s.add(mail)
        s.flush()
        provider_id = mail.id
    send = doc([ALL, ("wait", "wait", {"amount": 1, "unit": "days"}),
                ("mail", "send_email", {"provider_id": provider_id,
                                        "content": {"subject": "Hi", "text": "Hello {{ profile.email }}"}})],
               [("all", "out", "wait"), ("wait", "out", "mail")], name="Mail later")
    cid = ok(api.post("/api/campaigns?launch=true", json=send), 201)["id"]
    harness.machine.run_due()
    assert ok(api.delete(f"/api/providers/{provider_id}"))["suspended_campaigns"] == [cid]
    suspended = ok(api.get(f"/api/campaigns/{cid}"))
    assert suspended["status"] == "suspended" and "Mail" in suspended["status_reason"]
    assert [c["id"] for c in ok(api.get("/api/campaigns?status=suspended"))["items"]] == [cid]

    err = error(api.post(f"/api/campaigns/{cid}/resume"), 409, "invalid_state")
    assert err["details"] == [{"node_id": "mail", "pointer": "/settings/provider_id"}]
    assert ok(api.get(f"/api/campaigns/{cid}"))["status"] == "suspended"


# --------------------------------------------------------------------------- lists


def test_lists_page_and_count(api, harness):
    for n in range(25):
        ok(api.post("/api/campaigns", json=waiting_flow(f"Campaign {n:02d}", tags=["even" if n % 2 else "odd"])), 201)
    page = ok(api.get("/api/campaigns?limit=10&offset=20&sort=name"))
    assert (page["total"], page["limit"], page["offset"]) == (25, 10, 20)
    assert [c["name"] for c in page["items"]] == [f"Campaign {n}" for n in range(20, 25)]
    assert ok(api.get("/api/campaigns?tag=odd&limit=1"))["total"] == 13
    assert ok(api.get("/api/campaigns?status=draft,active"))["total"] == 25
    assert ok(api.get("/api/campaigns?q=campaign 0"))["total"] == 10
    assert ok(api.get("/api/campaigns?q=50%"))["total"] == 0, "a % in the search is a character, not a wildcard"


@pytest.mark.parametrize("query, field", [("status=running", "status"), ("limit=abc", "limit"), ("limit=0", "limit"),
                                          ("offset=-1", "offset"), ("sort=size", "sort")])
def test_bad_list_arguments_are_named(api, query, field):
    err = error(api.get(f"/api/campaigns?{query}"), 400, "invalid_input")
    assert err["details"][0]["pointer"] == field


def test_lists_show_entered_and_converted_counts(api, harness):
    with harness.transaction() as s:
        add_profiles(s, 7)
    cid = ok(api.post("/api/campaigns?launch=true", json=waiting_flow()), 201)["id"]
    listed = ok(api.get("/api/campaigns"))["items"]
    assert [(c["id"], c["entered"], c["converted"]) for c in listed] == [(cid, 7, 0)]
