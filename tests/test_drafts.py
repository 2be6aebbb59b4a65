"""Drafts saved half-built: `?draft=true` keeps a draft campaign's document with its errors
(stored with the version, answered in `problems`); launching it, and saving any campaign that
is not a draft, still take only a valid document; a body that is not a campaign's structure
is refused naming the field, whatever the flag, and changes nothing. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support import at_once, authed_client, doc, error_of, ok, snapshot


def half_built(name: str = "Half built") -> dict:
    """A trigger, a points node with no points yet, and a wait nobody reaches: three errors."""
    return doc([("all", "select_segment", {"source": "all"}), ("p", "award_points", {}), ("lonely", "wait", {})],
               [("all", "out", "p")], name=name)


def finished(name: str = "Finished") -> dict:
    return doc([("all", "select_segment", {"source": "all"}), ("p", "award_points", {"points": 5})],
               [("all", "out", "p")], name=name)


def unpinned(document: dict) -> dict:
    """The document as sent: without the node versions saving writes in."""
    return {**document, "nodes": [{k: v for k, v in n.items() if k != "version"} for n in document["nodes"]]}


def pointers(problems: list[dict]) -> set[str]:
    return {p["pointer"] for p in problems if p["severity"] == "error"}


HALF_BUILT_ERRORS = {"/nodes/1/settings/points", "/nodes/2/settings/amount", "/nodes/2"}


def test_a_half_built_draft_is_saved_with_its_problems(api, harness):
    created = ok(api.post("/api/campaigns?draft=true", json=half_built()), 201)
    assert created["status"] == "draft" and created["name"] == "Half built" and created["version"] == 1
    assert pointers(created["problems"]) == HALF_BUILT_ERRORS
    assert {p["node_id"] for p in created["problems"]} >= {"p", "lonely"}
    again = ok(api.get(f"/api/campaigns/{created['id']}"))
    assert again["problems"] == created["problems"]
    assert [n["id"] for n in again["document"]["nodes"]] == ["all", "p", "lonely"]

    # an edit of the draft: still half built, a new version with the problems left
    edited = half_built("Half built, renamed")
    edited["nodes"][1]["settings"] = {"points": 3}
    saved = ok(api.put(f"/api/campaigns/{created['id']}?draft=true", json=edited))
    assert saved["version"] == 2 and saved["name"] == "Half built, renamed"
    assert pointers(saved["problems"]) == {"/nodes/2/settings/amount", "/nodes/2"}


def test_without_the_draft_flag_errors_are_refused_as_before(api, harness):
    ok(api.get("/api/campaigns"))  # the key's first use is recorded: not part of what is compared
    before = snapshot(harness)
    error = error_of(api.post("/api/campaigns", json=half_built()), 422, "invalid_document")
    assert pointers(error["details"]) == HALF_BUILT_ERRORS
    assert snapshot(harness) == before


def test_launch_is_refused_with_the_problems_and_changes_nothing(api, harness):
    created = ok(api.post("/api/campaigns?draft=true", json=half_built()), 201)
    before = snapshot(harness)
    error = error_of(api.post(f"/api/campaigns/{created['id']}/launch"), 422, "invalid_document")
    assert "cannot be launched yet: 3 problems to fix first" in error["message"]
    assert pointers(error["details"]) == HALF_BUILT_ERRORS
    # save and launch in one request: the launch fails, so nothing is saved either
    error = error_of(api.put(f"/api/campaigns/{created['id']}?draft=true&launch=true", json=half_built("Other")),
                     422, "invalid_document")
    assert snapshot(harness) == before
    assert ok(api.get(f"/api/campaigns/{created['id']}"))["status"] == "draft"

    # fixed, it launches
    ok(api.put(f"/api/campaigns/{created['id']}?draft=true", json=finished()))
    assert ok(api.post(f"/api/campaigns/{created['id']}/launch"))["status"] == "active"


@pytest.mark.parametrize("action", [None, "pause"])
def test_a_running_campaign_refuses_an_invalid_save_even_as_a_draft(api, harness, action):
    created = ok(api.post("/api/campaigns?launch=true", json=finished()), 201)
    if action:
        ok(api.post(f"/api/campaigns/{created['id']}/{action}"))
    before = snapshot(harness)
    for query in ("", "?draft=true"):
        error = error_of(api.put(f"/api/campaigns/{created['id']}{query}", json=half_built()), 422, "invalid_document")
        assert pointers(error["details"]) == HALF_BUILT_ERRORS
    assert snapshot(harness) == before
    assert ok(api.get(f"/api/campaigns/{created['id']}"))["version"] == 1


@pytest.mark.parametrize("body, pointer", [
    ({"name": "x", "nodes": {}, "edges": []}, "/nodes"),
    ({"name": "x", "nodes": [], "edges": "none"}, "/edges"),
    ({"nodes": [], "edges": []}, "/name"),
    ({"name": "x", "nodes": [{"type": "wait"}], "edges": []}, "/nodes/0/id"),
    ({"name": "x", "nodes": [{"id": "a b", "type": "wait"}], "edges": []}, "/nodes/0/id"),
    ({"name": "x", "nodes": [{"id": "a", "type": "wait", "settings": []}], "edges": []}, "/nodes/0/settings"),
    ({"name": "x", "nodes": [], "edges": [{"id": "e", "source": {}, "target": "a"}]}, "/edges/0/source"),
    ({"name": "x", "nodes": [{"id": f"n{i}", "type": "wait"} for i in range(2001)], "edges": []}, "/nodes"),
    ({"name": "x" * 201, "nodes": [], "edges": []}, "/name"),
    ({"name": "x", "nodes": [], "edges": [], "colour": "red"}, "/colour"),
], ids=["nodes-object", "edges-text", "no-name", "node-without-id", "bad-node-id", "settings-list",
        "edge-end-object", "too-many-nodes", "long-name", "unknown-field"])
def test_a_body_that_is_no_campaign_structure_is_refused_naming_the_field(api, harness, body, pointer):
    draft = ok(api.post("/api/campaigns?draft=true", json=half_built()), 201)
    before = snapshot(harness)
    for request in (lambda: api.post("/api/campaigns?draft=true", json=body),
                    lambda: api.put(f"/api/campaigns/{draft['id']}?draft=true", json=body)):
        error = error_of(request(), 422, "invalid_document")
        assert pointer in {d["pointer"] for d in error["details"]}, error["details"]
        assert all(d["message"] for d in error["details"])
    assert snapshot(harness) == before


@pytest.mark.parametrize("data", ['{"name": "x", "nodes": [', "[1, 2]"], ids=["malformed", "array"])
def test_malformed_json_is_refused_as_before(api, harness, data):
    ok(api.get("/api/campaigns"))  # the key's first use is recorded: not part of what is compared
    before = snapshot(harness)
    response = api.post("/api/campaigns?draft=true", data=data, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"]["details"]
    assert snapshot(harness) == before


def test_two_tabs_saving_one_draft_at_once_store_whole_versions(app, api, harness):
    """Each save locks the campaign, so the stored versions follow each other: the campaign
    row (name, tags) always mirrors the current version's whole document, never a mix."""
    created = ok(api.post("/api/campaigns?draft=true", json=half_built()), 201)
    tabs = [authed_client(app, harness) for _ in range(2)]
    documents = [{**half_built(f"Tab {n}"), "tags": [f"tab-{n}"]} for n in range(2)]
    for round_ in range(5):
        for document in documents:
            document["nodes"][0]["position"] = {"x": round_, "y": 0}  # a change each round
        turn = itertools.count()  # each thread takes the next tab (next() on a count is atomic)

        def save(turn=turn) -> object:
            index = next(turn)
            return tabs[index].put(f"/api/campaigns/{created['id']}?draft=true", json=documents[index])

        answers = at_once(2, save)
        assert sorted(a.status_code for a in answers) == [200, 200], [a.get_data(as_text=True) for a in answers]
        current = ok(api.get(f"/api/campaigns/{created['id']}"))
        assert unpinned(current["document"]) in documents
        assert (current["name"], current["tags"]) == (current["document"]["name"], current["document"]["tags"])
        assert pointers(current["problems"]) == HALF_BUILT_ERRORS
    versions = ok(api.get(f"/api/campaigns/{created['id']}/versions"))["items"]
    assert sorted(v["number"] for v in versions) == list(range(1, 12))


def test_a_clone_of_a_half_built_draft_keeps_its_problems(api, harness):
    created = ok(api.post("/api/campaigns?draft=true", json=half_built()), 201)
    copy = ok(api.post(f"/api/campaigns/{created['id']}/clone"), 201)
    assert copy["status"] == "draft" and pointers(copy["problems"]) == HALF_BUILT_ERRORS
