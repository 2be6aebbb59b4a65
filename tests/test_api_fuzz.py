"""Every write endpoint of the OpenAPI description, fed malformed requests by Hypothesis.

The promise under test: bad input gets a 4xx answer in the error shape, never a 500, and
a refused request changes nothing (every table is compared before and after). Endpoints
come from /api/openapi.json, so a new endpoint is fuzzed without touching this file.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sqlalchemy import text

from tests.support import doc, make_world, snapshot

WRITE_METHODS = ("post", "put", "patch", "delete")
#: a world id for each path parameter name; anything else gets 1
EXAMPLES = 12

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def _spec() -> dict[str, Any]:
    """The description, from an app on a throwaway runtime (collection time: no services)."""
    import tempfile
    from pathlib import Path

    from engine.core.config import Settings
    from engine.ops.runtime import Runtime
    from server import create_app

    folder = Path(tempfile.mkdtemp(prefix="cc-openapi-"))
    rt = Runtime(Settings(database_url=f"sqlite:///{folder / 'spec.db'}", redis_url="redis://127.0.0.1:1",
                          instance_dir=folder))
    app, _socketio = create_app(rt)
    return app.test_client().get("/api/openapi.json").get_json()


SPEC = _spec()
OPERATIONS = [(path, method) for path, item in SPEC["paths"].items() for method in item if method in WRITE_METHODS]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def bodies(operation: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for the test client: arbitrary JSON, objects with the schema's own
    field names holding wrong values, bytes that are not JSON, JSON sent as text/plain."""
    schema = _resolve(operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                      .get("schema", {}))
    names = sorted(schema.get("properties", {})) or ["name"]
    shaped = st.dictionaries(st.sampled_from(names), json_values, min_size=1, max_size=len(names))
    return st.one_of(
        json_values.map(lambda v: {"json": v}),
        shaped.map(lambda v: {"json": v}),
        st.binary(max_size=40).map(lambda b: {"data": b, "content_type": "application/json"}),
        shaped.map(lambda v: {"data": json.dumps(v), "content_type": "text/plain"}),
        st.just({}),
    )


def path_values(world: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    ids = st.sampled_from([1, 2, 999_999, 2**63 - 1, 2**63, 10**30])
    return st.fixed_dictionaries({name: st.one_of(st.just(value), ids) if isinstance(value, int) else st.just(value)
                                  for name, value in world.items()})


@pytest.fixture
def world(api, harness):
    """One of everything, so paths reach real objects as well as missing ones."""
    return make_world(api, harness)


def test_the_description_is_valid_and_covers_every_route_but_the_pages(app):
    import re

    assert SPEC["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in SPEC["paths"].items() for method in item}
    routes = {(re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule), method) for rule in app.url_map.iter_rules()
              if not getattr(app.view_functions[rule.endpoint], "page", False)
              for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    assert routes == documented
    assert {"/webhooks/sendgrid", "/webhooks/twilio", "/webhooks/push", "/metrics", "/embed/popup.js"} <= \
        set(SPEC["paths"])
    assert not {path for path in SPEC["paths"] if path in ("/", "/login", "/logout") or "{path}" in path}
    for schema in [*SPEC["components"]["schemas"].values()]:
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_malformed_requests_get_a_4xx_error_and_change_nothing(api, harness, world, path, method):
    operation = SPEC["paths"][path][method]
    api.get("/api/auth/me")  # the key's last use is recorded once, before the snapshots

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(values=path_values(world), request=bodies(operation))
    def check(values: dict[str, Any], request: dict[str, Any]) -> None:
        url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
        before = snapshot(harness)
        response = api.open(url, method=method.upper(), **request)
        assert response.status_code < 500, f"{method.upper()} {url} {request!r}: {response.get_data(as_text=True)}"
        if response.status_code >= 400:
            assert response.is_json, f"{method.upper()} {url}: {response.content_type}"
            error = response.get_json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
            assert isinstance(error["details"], list)
            assert snapshot(harness) == before, f"{method.upper()} {url} {request!r} was refused but changed data"
        with harness.session() as s:  # nothing left locked or half-open
            s.execute(text("SELECT 1"))

    check()


NUL_BODIES = [
    ("/api/campaigns", doc([("all", "select_segment", {"source": "all"}), ("p", "award_points", {"points": 1})],
                           [("all", "out", "p")], name="Sale\x00"), "/name"),
    ("/api/templates", {"channel": "email", "name": "t\x00", "content": {"subject": "s", "text": "t"}}, "/name"),
    ("/api/event-types", {"name": "signup\x00"}, "/name"),
    ("/api/events", {"event": "order", "profile": {"external_id": "x"}, "properties": {"k\x00": 1}},
     "/properties/k\x00"),
    ("/api/profiles", {"profiles": [{"external_id": "a", "attributes": {"city": "Pa\x00ris"}}]},
     "/profiles/0/attributes/city"),
]


@pytest.mark.parametrize("path, body, pointer", NUL_BODIES, ids=[p for p, _, _ in NUL_BODIES])
def test_a_nul_character_anywhere_in_a_body_is_refused_by_name(api, harness, path, body, pointer):
    """No database text column holds NUL; PostgreSQL would fail the insert with a 500."""
    api.get("/api/auth/me")  # the key's last use is recorded once, before the snapshot
    before = snapshot(harness)
    response = api.post(path, json=body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["details"][0]["pointer"] == pointer
    assert snapshot(harness) == before


@pytest.mark.parametrize("url", ["/api/event-types/sign%00up", "/api/campaigns?q=a%00", "/api/events?event=%00",
                                 "/api/profiles?q=%00x"])
def test_a_nul_character_in_a_url_is_refused(api, url):
    response = api.get(url)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_input"
