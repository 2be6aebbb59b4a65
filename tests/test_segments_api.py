"""Segments and audiences over the REST API, on SQLite and PostgreSQL: CRUD, rule problems
at their pointers under /rules, exact preview counts, deletion refused while a live
campaign (or another segment) uses them, and audience membership in bulk."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.core.models import AudienceMember, Segment
from tests.support import doc, error_of, ok

GOLD = {"match": "all", "rules": [{"field": "attributes.plan", "op": "eq", "value": "gold"}]}






def seed(api, count: int = 30) -> list[int]:
    """`count` customers: every third is on the gold plan, points = 10 * index."""
    items = [{"external_id": f"c{i}", "email": f"c{i}@example.com",
              "attributes": {"plan": "gold" if i % 3 == 0 else "free", "points": i * 10}} for i in range(count)]
    return ok(api.post("/api/profiles", json={"profiles": items}))["ids"]


def segments_stored(harness) -> int:
    with harness.session() as s:
        return s.scalar(select(func.count()).select_from(Segment))


# --------------------------------------------------------------------------- segments


def test_segment_crud(api, harness):
    created = ok(api.post("/api/segments", json={"name": " Gold ", "rules": GOLD}), 201)
    assert (created["name"], created["description"], created["rules"]) == ("Gold", "", GOLD)
    sid = created["id"]
    assert ok(api.get(f"/api/segments/{sid}")) == created
    other = ok(api.post("/api/segments", json={"name": "Everyone", "description": "all", "rules": {"rules": []}}), 201)
    assert [s["name"] for s in ok(api.get("/api/segments"))["items"]] == ["Everyone", "Gold"]
    assert [s["name"] for s in ok(api.get("/api/segments?q=GOL"))["items"]] == ["Gold"]

    updated = ok(api.put(f"/api/segments/{sid}", json={"description": "paying", "id": 12345}))
    assert (updated["name"], updated["description"], updated["rules"]) == ("Gold", "paying", GOLD)
    error = error_of(api.put(f"/api/segments/{sid}", json={"name": "Everyone"}), 409, "name_taken")
    assert error["details"][0]["pointer"] == "/name"
    error_of(api.post("/api/segments", json={"name": "Gold", "rules": GOLD}), 409, "name_taken")
    assert ok(api.delete(f"/api/segments/{other['id']}")) == {"deleted": other["id"]}
    error_of(api.get(f"/api/segments/{other['id']}"), 404, "not_found")
    error_of(api.put("/api/segments/999", json={"name": "x"}), 404, "not_found")
    error_of(api.delete("/api/segments/999"), 404, "not_found")
    assert segments_stored(harness) == 1


def test_rule_problems_name_their_pointer_and_store_nothing(api, harness):
    rules = {"match": "all", "rules": [{"field": "attributes.plan", "op": "eqq", "value": "x"},
                                       {"field": "points", "op": "gte", "value": "lots"}]}
    error = error_of(api.post("/api/segments", json={"name": "Bad", "rules": rules, "colour": 1}), 400,
                     "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/colour", "/rules/rules/0/op", "/rules/rules/1/value"]
    error = error_of(api.post("/api/segments", json={"name": ""}), 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/name", "/rules"]
    error = error_of(api.post("/api/segments", json={"name": "Ghost", "rules": {"rules": [{"segment": 404}]}}), 400,
                     "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/rules/rules/0/segment"]
    error = error_of(api.post("/api/segments/preview", json={"rules": {"rules": [{"audience": 9}]}}), 400,
                     "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/rules/rules/0/audience"]
    assert segments_stored(harness) == 0

    a = ok(api.post("/api/segments", json={"name": "A", "rules": GOLD}), 201)
    b = ok(api.post("/api/segments", json={"name": "B", "rules": {"rules": [{"segment": a["id"]}]}}), 201)
    error = error_of(api.put(f"/api/segments/{a['id']}", json={"rules": {"rules": [{"segment": b["id"]}]}}), 400,
                     "invalid_input")
    assert error["details"][0]["pointer"] == "/rules/rules/0/segment" and "references itself" in error["message"]
    assert ok(api.get(f"/api/segments/{a['id']}"))["rules"] == GOLD


def test_preview_counts_exactly(api):
    ids = seed(api, 90)
    sid = ok(api.post("/api/segments", json={"name": "Gold", "rules": GOLD}), 201)["id"]
    preview = ok(api.get(f"/api/segments/{sid}/preview"))
    assert preview["count"] == 30
    assert [p["id"] for p in preview["items"]] == [ids[i] for i in range(0, 60, 3)]  # the first 20, by id
    rich_gold = {"match": "all", "rules": [{"segment": sid}, {"field": "attributes.points", "op": "gte", "value": 450}]}
    preview = ok(api.post("/api/segments/preview", json={"rules": rich_gold}))
    assert preview["count"] == 15 and [p["external_id"] for p in preview["items"]][:2] == ["c45", "c48"]
    nobody = {"match": "any", "rules": []}
    assert ok(api.post("/api/segments/preview", json={"rules": nobody})) == {"count": 0, "items": []}
    error_of(api.post("/api/segments/preview", json={}), 400, "invalid_input")
    error_of(api.get("/api/segments/999/preview"), 404, "not_found")


def test_a_segment_in_use_cannot_be_deleted(api, harness):
    seed(api, 6)
    sid = ok(api.post("/api/segments", json={"name": "Gold", "rules": GOLD}), 201)["id"]
    document = doc([("seg", "select_segment", {"source": "segment", "segment_id": sid}), ("join", "merge", {})],
                   [("seg", "out", "join")], name="Gold welcome")
    campaign = ok(api.post("/api/campaigns", json=document), 201)
    wrapper = ok(api.post("/api/segments", json={"name": "Gold too", "rules": {"rules": [{"segment": sid}]}}), 201)

    error = error_of(api.delete(f"/api/segments/{sid}"), 409, "invalid_state")
    assert "'Gold welcome'" in error["message"] and "'Gold too'" in error["message"]
    assert [(d.get("campaign_id"), d.get("segment_id")) for d in error["details"]] == [
        (campaign["id"], None), (None, wrapper["id"])]
    assert ok(api.delete(f"/api/segments/{wrapper['id']}")) == {"deleted": wrapper["id"]}

    assert ok(api.post(f"/api/campaigns/{campaign['id']}/launch"))["entered"] == 2
    error_of(api.delete(f"/api/segments/{sid}"), 409, "invalid_state")
    assert ok(api.post(f"/api/campaigns/{campaign['id']}/stop"))["status"] == "stopped"
    assert ok(api.delete(f"/api/segments/{sid}")) == {"deleted": sid}
    assert segments_stored(harness) == 0


# --------------------------------------------------------------------------- audiences


def members_stored(harness) -> int:
    with harness.session() as s:
        return s.scalar(select(func.count()).select_from(AudienceMember))


def test_audience_crud(api, harness):
    vip = ok(api.post("/api/audiences", json={"name": "VIP", "description": "big spenders"}), 201)
    assert (vip["name"], vip["description"], vip["member_count"]) == ("VIP", "big spenders", 0)
    ok(api.post("/api/audiences", json={"name": "Beta"}), 201)
    error_of(api.post("/api/audiences", json={"name": "VIP"}), 409, "name_taken")
    error = error_of(api.post("/api/audiences", json={"title": "x"}), 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/title", "/name"]
    renamed = ok(api.patch(f"/api/audiences/{vip['id']}", json={"name": "VIPs"}))
    assert (renamed["name"], renamed["description"]) == ("VIPs", "big spenders")
    error_of(api.patch(f"/api/audiences/{vip['id']}", json={"name": "Beta"}), 409, "name_taken")
    assert [a["name"] for a in ok(api.get("/api/audiences"))["items"]] == ["Beta", "VIPs"]
    assert ok(api.get(f"/api/audiences/{vip['id']}"))["name"] == "VIPs"
    assert ok(api.delete(f"/api/audiences/{vip['id']}")) == {"deleted": vip["id"]}
    error_of(api.get(f"/api/audiences/{vip['id']}"), 404, "not_found")
    error_of(api.patch("/api/audiences/999", json={"name": "x"}), 404, "not_found")


def test_audience_membership_in_bulk(api, harness):
    ids = seed(api, 30)
    aid = ok(api.post("/api/audiences", json={"name": "VIP"}), 201)["id"]
    added = ok(api.post(f"/api/audiences/{aid}/members", json={
        "profile_ids": ids[:20], "profiles": [{"email": "C25@example.com"}, {"external_id": "c0"}]}))
    assert added == {"added": 21, "member_count": 21}
    again = ok(api.post(f"/api/audiences/{aid}/members", json={"profile_ids": ids[15:22]}))
    assert again == {"added": 2, "member_count": 23}

    error = error_of(api.post(f"/api/audiences/{aid}/members", json={
        "profile_ids": [ids[29], 999999, "x"], "profiles": [{"email": "nobody@example.com"}, {"name": "c1"}]}),
        400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/profile_ids/2", "/profiles/1"]
    error = error_of(api.post(f"/api/audiences/{aid}/members", json={
        "profile_ids": [ids[29], 999999], "profiles": [{"email": "nobody@example.com"}]}), 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/profile_ids/1", "/profiles/0"]
    error_of(api.post(f"/api/audiences/{aid}/members", json={}), 400, "invalid_input")
    assert members_stored(harness) == 23

    page = ok(api.get(f"/api/audiences/{aid}/members?limit=10&offset=20"))
    assert (page["total"], len(page["items"])) == (23, 3)
    assert [p["id"] for p in page["items"]] == [ids[20], ids[21], ids[25]]  # by time added, then id
    assert page["items"][0]["added_at"]
    assert ok(api.get(f"/api/audiences/{aid}"))["member_count"] == 23
    assert [a["member_count"] for a in ok(api.get("/api/audiences"))["items"]] == [23]

    removed = ok(api.delete(f"/api/audiences/{aid}/members", json={"profile_ids": [*ids[:5], ids[29]],
                                                                  "profiles": [{"external_id": "c21"}]}))
    assert removed == {"removed": 6, "member_count": 17}
    error_of(api.get("/api/audiences/999/members"), 404, "not_found")


def test_an_audience_in_use_cannot_be_deleted(api, harness):
    aid = ok(api.post("/api/audiences", json={"name": "Winners"}), 201)["id"]
    document = doc([("all", "select_segment", {"source": "all"}), ("add", "add_to_audience", {"audience_id": aid})],
                   [("all", "out", "add")], name="Collect")
    campaign = ok(api.post("/api/campaigns", json=document), 201)
    error = error_of(api.delete(f"/api/audiences/{aid}"), 409, "invalid_state")
    assert error["details"][0]["campaign_id"] == campaign["id"] and "'Collect'" in error["message"]
    segment = ok(api.post("/api/segments", json={"name": "Won", "rules": {"rules": [{"audience": aid}]}}), 201)
    ok(api.post(f"/api/campaigns/{campaign['id']}/launch"))
    ok(api.post(f"/api/campaigns/{campaign['id']}/stop"))
    error = error_of(api.delete(f"/api/audiences/{aid}"), 409, "invalid_state")
    assert [d.get("segment_id") for d in error["details"]] == [segment["id"]]
    ok(api.delete(f"/api/segments/{segment['id']}"))
    assert ok(api.delete(f"/api/audiences/{aid}")) == {"deleted": aid}
