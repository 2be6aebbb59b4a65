"""The REST API through Flask's test client, on SQLite and PostgreSQL with a real Redis.

What a canvas (or any API client) relies on: the node palette, campaigns saved as
versions, every document problem reported with its JSON pointer and node, a rejected
document storing nothing, lifecycle transitions, exact per node statistics, and JSON
errors (never an HTML page) for everything under /api/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from engine.core.models import Campaign, CampaignVersion, Enrollment
from engine.journeys.campaigns import with_node_versions
from tests.support import add_profiles, doc, error_of

BUILT_IN = {"select_segment", "event_trigger", "filter", "refresh_filter", "ab_test", "control_group", "limit",
            "wait", "wait_until", "merge", "add_to_audience", "exclude_from_audience", "award_points"}

ALL = ("all", "select_segment", {"source": "all"})
RICH = {"match": "all", "rules": [{"field": "points", "op": "gte", "value": 100}]}


def good_document(name: str = "Reward the rich", **extra):
    """Everyone; 100+ points get 10 points at once, the others wait a day first."""
    return doc([ALL, ("rich", "filter", {"rules": RICH}), ("bonus", "award_points", {"points": 10}),
                ("later", "wait", {"amount": 1, "unit": "days"}), ("join", "merge", {})],
               [("all", "out", "rich"), ("rich", "yes", "bonus"), ("rich", "no", "later"),
                ("bonus", "out", "join"), ("later", "out", "join")], name=name, **extra)


@pytest.fixture
def client(api):
    return api


def stored(harness) -> tuple[int, int]:
    """(campaigns, campaign versions) rows in the database."""
    with harness.session() as s:
        return (s.scalar(select(func.count()).select_from(Campaign)),
                s.scalar(select(func.count()).select_from(CampaignVersion)))




def create(client, document) -> dict:
    response = client.post("/api/campaigns", json=document)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


# --------------------------------------------------------------------------- node types


def test_node_types_lists_every_built_in_type_with_schema_and_ports(client):
    response = client.get("/api/node-types")
    assert response.status_code == 200
    types = {t["type"]: t for t in response.get_json()}
    assert set(types) >= BUILT_IN
    for name in BUILT_IN:
        t = types[name]
        Draft202012Validator.check_schema(t["schema"])  # the canvas builds its forms from it
        assert t["schema"]["type"] == "object"
        assert isinstance(t["label"], str) and t["label"]
        assert isinstance(t["ports"], list)
    assert types["filter"]["ports"] == ["yes", "no"] and types["filter"]["dynamic_ports"] is False
    assert types["control_group"]["ports"] == ["out", "control"]
    assert types["limit"]["ports"] == ["out", "over_limit"]
    assert types["ab_test"]["dynamic_ports"] is True  # a port per variant, from the settings
    assert "variants" in types["ab_test"]["schema"]["properties"]
    assert {n for n, t in types.items() if t["entry"]} >= {"select_segment", "event_trigger"}
    assert {n for n in BUILT_IN if types[n]["delay"]} == {"wait", "wait_until"}


VARIANTS = {"variants": [{"id": "a", "weight": 50}, {"id": "b", "weight": 50}]}


def test_the_ports_of_a_node_come_from_its_type_and_settings(client, app, harness):
    from tests.support import authed_client

    ports = client.post("/api/node-types/ab_test/ports", json={"settings": VARIANTS})
    assert ports.status_code == 200 and ports.get_json() == {"ports": ["a", "b"]}
    assert client.post("/api/node-types/filter/ports", json={"settings": {}}).get_json() == {"ports": ["yes", "no"]}
    viewer = authed_client(app, harness, role="viewer")  # it changes nothing: viewers may ask
    assert viewer.post("/api/node-types/ab_test/ports", json={"settings": {"variants": []}}).get_json() == {
        "ports": []}


def test_ports_of_an_unknown_type_are_a_404(client):
    error = error_of(client.post("/api/node-types/no_such_type/ports", json={"settings": {}}), 404, "not_found")
    assert "no_such_type" in error["message"]


@pytest.mark.parametrize("body", [
    {},  # no settings
    {"settings": None},
    {"settings": [VARIANTS]},
    {"settings": "variants"},
    {"settings": {"variants": "ab"}},  # ports_for cannot read these: still a 400, never a 500
    {"settings": {"variants": [{"weight": 50}]}},
    {"settings": {"variants": [{"id": 1}]}},  # ports are names
    {"settings": {"variants": 7}},
])
def test_malformed_settings_for_ports_are_named(client, body):
    error = error_of(client.post("/api/node-types/ab_test/ports", json=body), 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/settings"]


# --------------------------------------------------------------------------- saving campaigns


def test_create_get_and_edit_make_versions(client, harness):
    document = good_document(description="first try", tags=["loyalty"])
    created = create(client, document)
    assert created["status"] == "draft"
    assert isinstance(created["id"], int) and isinstance(created["version_id"], int)
    assert created["name"] == "Reward the rich" and created["tags"] == ["loyalty"]

    fetched = client.get(f"/api/campaigns/{created['id']}").get_json()
    assert fetched["document"] == with_node_versions(document), "as sent, each node with its type's version"
    assert fetched["version_id"] == created["version_id"]

    edited = good_document(name="Reward the rich, more", tags=["loyalty", "q4"])
    edited["nodes"][2]["settings"]["points"] = 25
    response = client.put(f"/api/campaigns/{created['id']}", json=edited)
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["version_id"] != created["version_id"]
    assert updated["name"] == "Reward the rich, more" and updated["tags"] == ["loyalty", "q4"]
    again = client.get(f"/api/campaigns/{created['id']}").get_json()
    assert again["document"] == with_node_versions(edited) and again["version_id"] == updated["version_id"]
    assert stored(harness) == (1, 2)


def test_list_filters_by_status_name_and_tag(client, harness):
    with harness.transaction() as s:
        add_profiles(s, 3)
    welcome = create(client, good_document("Welcome series", tags=["onboarding"]))
    winback = create(client, good_document("Win-back", tags=["winback"]))
    sale = create(client, good_document("Winter sale", tags=["sale", "winback"]))
    assert client.post(f"/api/campaigns/{sale['id']}/launch").status_code == 200

    def names(query: str) -> set[str]:
        response = client.get(f"/api/campaigns{query}")
        assert response.status_code == 200
        return {c["name"] for c in response.get_json()["items"]}

    assert names("") == {"Welcome series", "Win-back", "Winter sale"}
    assert names("?status=active") == {"Winter sale"}
    assert names("?status=draft") == {"Welcome series", "Win-back"}
    assert names("?q=win") == {"Win-back", "Winter sale"}
    assert names("?q=WIN") == {"Win-back", "Winter sale"}  # case-insensitive
    assert names("?tag=winback") == {"Win-back", "Winter sale"}
    assert names("?tag=onboarding") == {"Welcome series"}
    assert names("?status=draft&tag=winback") == {"Win-back"}
    assert names("?q=nothing-like-this") == set()
    assert {welcome["id"], winback["id"], sale["id"]} == {c["id"] for c in
                                                          client.get("/api/campaigns").get_json()["items"]}


# --------------------------------------------------------------------------- bad documents


def _unknown_type():
    d = good_document()
    d["nodes"][2]["type"] = "send_fax"
    return d


def _negative_wait():
    d = good_document()
    d["nodes"][3]["settings"]["amount"] = -1
    return d


def _no_entry():
    return doc([("rich", "filter", {"rules": RICH}), ("later", "wait", {"amount": 1})], [("rich", "yes", "later")])


def _several_entries():
    return doc([ALL, ("signup", "event_trigger", {"event": "signup"}), ("join", "merge", {})],
               [("all", "out", "join"), ("signup", "out", "join")])


def _unreachable():
    return doc([ALL, ("rich", "filter", {"rules": RICH}), ("lonely", "merge", {})], [("all", "out", "rich")])


def _unknown_port():
    return doc([ALL, ("later", "wait", {"amount": 1})], [("all", "yes", "later")])


def _cycle():
    return doc([ALL, ("m1", "merge", {}), ("m2", "merge", {})],
               [("all", "out", "m1"), ("m1", "out", "m2"), ("m2", "out", "m1")])


def _no_name():
    d = good_document()
    del d["name"]
    return d


BAD_DOCUMENTS = [
    # (builder, problem code, pointer, node id)
    (_unknown_type, "unknown_type", "/nodes/2/type", "bonus"),
    (_negative_wait, "invalid_settings", "/nodes/3/settings/amount", "later"),
    (_no_entry, "no_entry", "/nodes", None),
    (_several_entries, "several_entries", "/nodes/1", "signup"),
    (_unreachable, "unreachable", "/nodes/2", "lonely"),
    (_unknown_port, "unknown_port", "/edges/0/source_port", "all"),
    (_cycle, "cycle_without_delay", "/nodes/1", "m1"),
    (_no_name, "missing_field", "/name", None),
]


@pytest.mark.parametrize("build, code, pointer, node_id", BAD_DOCUMENTS, ids=[c[1] for c in BAD_DOCUMENTS])
def test_bad_document_is_rejected_with_the_problem_and_stores_nothing(client, harness, build, code, pointer,
                                                                      node_id):
    before = stored(harness)
    error = error_of(client.post("/api/campaigns", json=build()), 422, "invalid_document")
    problems = {(p["code"], p["pointer"], p["node_id"]) for p in error["details"]}
    assert (code, pointer, node_id) in problems, error["details"]
    assert all(p["severity"] == "error" and p["message"] for p in error["details"])
    assert stored(harness) == before


@pytest.mark.parametrize("data, content_type", [
    ('{"name": "half a document", "nodes": [', "application/json"),
    ("", "application/json"),
    ('{"name": "x", "nodes": [], "edges": []}', "text/plain"),
    ("name=x", "application/x-www-form-urlencoded"),
], ids=["malformed", "empty", "text-plain", "form"])
def test_body_that_is_not_json_is_rejected_and_stores_nothing(client, harness, data, content_type):
    before = stored(harness)
    error = error_of(client.post("/api/campaigns", data=data, content_type=content_type), 400, "invalid_input")
    assert "JSON" in error["message"]
    assert error["details"] and error["details"][0]["pointer"] == ""
    assert stored(harness) == before


def test_bad_edit_keeps_the_current_version(client, harness):
    created = create(client, good_document())
    before = stored(harness)
    error = error_of(client.put(f"/api/campaigns/{created['id']}", json=_negative_wait()), 422, "invalid_document")
    assert ("invalid_settings", "/nodes/3/settings/amount", "later") in {
        (p["code"], p["pointer"], p["node_id"]) for p in error["details"]}
    error_of(client.put(f"/api/campaigns/{created['id']}", data="{", content_type="application/json"),
             400, "invalid_input")
    assert stored(harness) == before
    current = client.get(f"/api/campaigns/{created['id']}").get_json()
    assert current["version_id"] == created["version_id"]
    assert current["document"] == with_node_versions(good_document())


def test_validate_returns_every_problem_and_stores_nothing(client, harness):
    response = client.post("/api/campaigns/validate", json=good_document())
    assert response.status_code == 200
    problems = response.get_json()["problems"]
    # a valid document: only the warning that customers leaving 'join' end their journey there
    assert [(p["code"], p["severity"], p["node_id"], p["pointer"]) for p in problems] == [
        ("unconnected_port", "warning", "join", "/nodes/4")]

    broken = _negative_wait()
    broken["nodes"][2]["type"] = "send_fax"
    response = client.post("/api/campaigns/validate", json=broken)
    assert response.status_code == 200
    found = {(p["code"], p["pointer"], p["node_id"], p["severity"]) for p in response.get_json()["problems"]}
    assert ("invalid_settings", "/nodes/3/settings/amount", "later", "error") in found
    assert ("unknown_type", "/nodes/2/type", "bonus", "error") in found
    assert ("unconnected_port", "/nodes/4", "join", "warning") in found
    error_of(client.post("/api/campaigns/validate", data="nope", content_type="application/json"),
             400, "invalid_input")
    assert stored(harness) == (0, 0)


# --------------------------------------------------------------------------- running campaigns


def test_launch_runs_and_stats_count_every_node_exactly(client, harness):
    with harness.transaction() as s:
        add_profiles(s, 30, points=lambda i: i * 10)  # 0..290 points: 20 have 100 or more
    cid = create(client, good_document())["id"]
    response = client.post(f"/api/campaigns/{cid}/launch")
    assert response.status_code == 200
    assert response.get_json()["status"] == "active" and response.get_json()["entered"] == 30
    harness.machine.run_due()

    nodes = client.get(f"/api/campaigns/{cid}/stats").get_json()["nodes"]
    assert nodes["all"] == {"entered": 30, "waiting": 0, "left": {"out": 30}}
    assert nodes["rich"] == {"entered": 30, "waiting": 0, "left": {"yes": 20, "no": 10}}
    assert nodes["bonus"] == {"entered": 20, "waiting": 0, "left": {"out": 20}}
    assert nodes["later"] == {"entered": 10, "waiting": 10, "left": {}}
    assert nodes["join"] == {"entered": 20, "waiting": 0, "left": {"out": 20}}

    harness.machine.advance(timedelta(days=1))
    nodes = client.get(f"/api/campaigns/{cid}/stats").get_json()["nodes"]
    assert nodes["later"] == {"entered": 10, "waiting": 0, "left": {"out": 10}}
    assert nodes["join"] == {"entered": 30, "waiting": 0, "left": {"out": 30}}


def test_pause_resume_stop(client, harness):
    with harness.transaction() as s:
        add_profiles(s, 30, points=lambda i: i * 10)
    cid = create(client, good_document())["id"]
    client.post(f"/api/campaigns/{cid}/launch")
    harness.machine.run_due()

    assert client.post(f"/api/campaigns/{cid}/pause").get_json()["status"] == "paused"
    harness.machine.advance(timedelta(days=2))  # the wait is over, but a paused campaign holds everyone
    assert client.get(f"/api/campaigns/{cid}/stats").get_json()["nodes"]["later"]["waiting"] == 10

    assert client.post(f"/api/campaigns/{cid}/resume").get_json()["status"] == "active"
    harness.machine.run_due()
    assert client.get(f"/api/campaigns/{cid}/stats").get_json()["nodes"]["later"]["left"] == {"out": 10}

    # a second campaign with customers still waiting, stopped
    other = create(client, good_document("Another"))["id"]
    client.post(f"/api/campaigns/{other}/launch")
    harness.machine.run_due()
    stopped = client.post(f"/api/campaigns/{other}/stop").get_json()
    assert stopped["status"] == "stopped" and stopped["finished_at"]
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Enrollment).where(
            Enrollment.campaign_id == other, Enrollment.state == "active")) == 0
    harness.machine.advance(timedelta(days=2))
    assert client.get(f"/api/campaigns/{other}/stats").get_json()["nodes"]["later"] == {
        "entered": 10, "waiting": 0, "left": {}}


@pytest.mark.parametrize("setup, action", [
    ([], "resume"),                       # a draft cannot be resumed
    ([], "pause"),
    ([], "stop"),
    (["launch"], "launch"),               # launch twice
    (["launch"], "resume"),               # resume an active campaign
    (["launch", "pause"], "pause"),
    (["launch", "pause"], "launch"),
    (["launch", "stop"], "resume"),
    (["launch", "stop"], "stop"),
    (["launch", "stop"], "launch"),
], ids=lambda v: "-".join(v) if isinstance(v, list) else v)
def test_invalid_transition_is_409_and_changes_nothing(client, harness, setup, action):
    with harness.transaction() as s:
        add_profiles(s, 5)
    cid = create(client, good_document())["id"]
    for step in setup:
        assert client.post(f"/api/campaigns/{cid}/{step}").status_code == 200
    before = client.get(f"/api/campaigns/{cid}").get_json()
    with harness.session() as s:
        enrollments = s.scalar(select(func.count()).select_from(Enrollment))

    error = error_of(client.post(f"/api/campaigns/{cid}/{action}"), 409, "invalid_state")
    assert before["status"] in error["message"]
    assert client.get(f"/api/campaigns/{cid}").get_json() == before
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Enrollment)) == enrollments


def test_launch_with_a_missing_segment_stays_a_draft(client, harness):
    document = doc([("seg", "select_segment", {"source": "segment", "segment_id": 999}), ("join", "merge", {})],
                   [("seg", "out", "join")])
    cid = create(client, document)["id"]
    error = error_of(client.post(f"/api/campaigns/{cid}/launch"), 409, "invalid_state")
    assert "999" in error["message"]
    campaign = client.get(f"/api/campaigns/{cid}").get_json()
    assert campaign["status"] == "draft" and campaign["launched_at"] is None


@pytest.mark.parametrize("method, path", [
    ("get", "/api/campaigns/4242"),
    ("put", "/api/campaigns/4242"),
    ("get", "/api/campaigns/4242/stats"),
    ("post", "/api/campaigns/4242/launch"),
    ("post", "/api/campaigns/4242/pause"),
    ("post", "/api/campaigns/4242/resume"),
    ("post", "/api/campaigns/4242/stop"),
])
def test_unknown_campaign_is_404_json(client, harness, method, path):
    response = getattr(client, method)(path, json=good_document())
    error = error_of(response, 404, "not_found")
    assert "4242" in error["message"]
    assert stored(harness) == (0, 0)


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/campaigns/not-a-number", "/api/node-types/extra"])
def test_unknown_api_path_is_a_json_404_not_the_page(client, path):
    response = client.get(path)
    error_of(response, 404, "not_found")
    assert b"<html" not in response.data.lower()


def test_unknown_api_path_with_another_method_is_json(client):
    response = client.post("/api/nothing-here", json={})
    assert 400 <= response.status_code < 500
    assert response.is_json and response.get_json()["error"]["code"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/profiles/99999999999999999999999"),   # too large for the column: no id of ours
    ("DELETE", "/api/campaigns/2147483648"),
    ("POST", "/api/campaigns/1/frobnicate"),             # not an action
    ("POST", "/api/nothing-here"),
    ("PUT", "/api/api"),
])
def test_a_path_no_route_takes_is_a_404_whatever_the_method(client, method, path):
    """Not a 405: the UI's GET route (every other path) is no API route of that path."""
    error_of(client.open(path, method=method, json={}), 404, "not_found")


def test_a_method_a_route_does_not_take_is_still_a_405(client):
    response = client.put("/api/campaigns", json={})
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"


def test_the_description_documents_the_statuses_views_answer(client, harness):
    """Each create answers the status its description documents (201), from one declaration."""
    paths = client.get("/api/openapi.json").get_json()["paths"]
    created = client.post("/api/audiences", json={"name": "Fans"})
    assert created.status_code == 201 and list(paths["/api/audiences"]["post"]["responses"]) == ["201", "413", "4XX"]
    assert list(paths["/api/segments"]["post"]["responses"]) == ["201", "413", "4XX"]
    assert list(paths["/api/profiles/import"]["post"]["responses"]) == ["201", "202", "413", "4XX"]
    assert list(paths["/api/audiences/{audience_id}"]["patch"]["responses"]) == ["200", "413", "4XX"]
    assert list(paths["/api/campaigns"]["get"]["responses"]) == ["200", "4XX"], "no body, no 413"


def test_a_change_body_requires_what_the_view_requires(client, harness):
    """PATCH takes any subset of the fields: the description requires none, nor does the view."""
    spec = client.get("/api/openapi.json").get_json()
    body = spec["paths"]["/api/audiences/{audience_id}"]["patch"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/AudienceChange"}
    assert "required" not in spec["components"]["schemas"]["AudienceChange"]
    audience = client.post("/api/audiences", json={"name": "Fans", "description": "loud"}).get_json()
    unchanged = client.patch(f"/api/audiences/{audience['id']}", json={})
    assert unchanged.status_code == 200
    assert (unchanged.get_json()["name"], unchanged.get_json()["description"]) == ("Fans", "loud")


# --------------------------------------------------------------------------- the page

CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")


@pytest.mark.parametrize("path", ["/", "/login", "/campaigns/1", "/api/campaigns", "/api/nothing-here",
                                  "/api/openapi.json"])
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_anonymous_and_refused_answers_carry_them_too(app):
    anonymous = app.test_client()
    for response in (anonymous.get("/"), anonymous.get("/api/campaigns"), anonymous.post("/api/campaigns", json={})):
        assert response.status_code in (302, 401)
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Frame-Options"] == "DENY"


def test_hashed_assets_are_cached_for_good_and_the_page_revalidated(client, monkeypatch, tmp_path):
    from engine.web import app as server

    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script type="module" src="/assets/index-Ab12.js"></script>')
    (tmp_path / "assets" / "index-Ab12.js").write_text("console.log('canvas')")
    monkeypatch.setattr(server, "UI_DIST", tmp_path)
    asset = client.get("/assets/index-Ab12.js")
    assert asset.status_code == 200 and "javascript" in asset.mimetype
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for path in ("/", "/index.html", "/campaigns/3"):  # deep links get the page, never cached stale
        page = client.get(path)
        assert page.status_code == 200 and "/assets/index-Ab12.js" in page.get_data(as_text=True)
        assert page.headers["Cache-Control"] == "no-cache"
    missing = client.get("/assets/index-Gone.js")  # an old build's asset: not the page under its name
    assert missing.status_code == 404 and "immutable" not in missing.headers.get("Cache-Control", "")



def test_placeholder_page_never_inserts_names_as_html(client, monkeypatch, tmp_path):
    from engine.web import app as server

    monkeypatch.setattr(server, "UI_DIST", tmp_path / "no-build")  # the placeholder, built UI or not
    create(client, good_document('<img src=x onerror="alert(1)">'))
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<script>" not in page, "no inline script: the Content-Security-Policy would not run it"
    script = client.get("/campaigns.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    page += script.get_data(as_text=True)
    assert "/api/campaigns" in page  # it lists the campaigns itself, in the browser
    assert "textContent" in page
    assert "innerHTML" not in page and "outerHTML" not in page and "insertAdjacentHTML" not in page
    assert "onerror" not in page
    # deep links of the single-page UI get the page too
    deep = client.get("/campaigns/1/edit")
    assert deep.status_code == 200 and deep.mimetype == "text/html"
    # the name reaches the browser only as JSON data
    items = client.get("/api/campaigns").get_json()["items"]
    assert items[0]["name"] == '<img src=x onerror="alert(1)">'
