"""The API against its own description: schemathesis reads /api/openapi.json and calls every
operation in it (through WSGI, on each database) with requests the description allows and
requests it refuses.

What must hold, per answer: never a 5xx; a status the operation documents (a 201 answered
where 200 is documented fails here); a content type and, for JSON, a body its schema
describes (errors included); and a request the description refuses (a PATCH without a field
the schema requires, a wrong type, an unknown field) is refused, so a view that accepts
more than is described fails too. The description is generated from the declarations the
views are checked with (engine/web/declare.py), so this is where a drift between the two,
or a 500, shows.

Bounded and deterministic: a fixed seed, derandomized Hypothesis, a few examples per
operation, so it neither flakes nor takes more than about a minute per database.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from engine.ops import auth
from tests.support import make_world

EXAMPLES = 3
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
CONFIG = schemathesis.Config.from_dict({
    "seed": 20261201,
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
    "phases": {"stateful": {"enabled": False}},
})


@pytest.fixture
def api_key(harness) -> str:
    with harness.transaction() as session:
        _row, key = auth.create_api_key(session, "conformance", "admin")
    return key


def test_every_answer_is_one_the_description_allows(app, api, harness, api_key):
    world = make_world(api, harness)
    described = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)
    failures: list[str] = []
    for operation in (result.ok() for result in described.get_all_operations()):
        real = {p.name: world[p.name] for p in operation.path_parameters if p.name in world}
        for mode, paths in product((GenerationMode.POSITIVE, GenerationMode.NEGATIVE), [{}, real] if real else [{}]):
            failures += _failures(operation, mode, paths, api_key)
    assert not failures, f"{len(failures)} operations answer what the description does not allow:\n" + \
        "\n".join(failures)


def _failures(operation, mode: GenerationMode, paths: dict[str, Any], api_key: str) -> list[str]:
    """What the checks found for `operation` in `mode`, its path naming real objects
    (`paths`) or anything (the first failing example's report)."""

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=paths or None))
    def call(case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)

    try:
        call()
    except Unsatisfiable:  # nothing the description refuses can be sent (a GET without parameters)
        return []
    except (AssertionError, BaseExceptionGroup) as exc:  # every operation's failures are reported at once
        where = "real objects" if paths else "any path"
        return [f"--- {operation.method.upper()} {operation.path} ({mode.value}, {where}): {exc}"]
    return []


def test_the_declarations_list_what_the_engine_knows():
    """Where a request schema lists what the engine defines (channels, roles, columns...), the
    two lists agree: adding one in the code without the schema refuses it in every request."""
    from engine.core.jsonschemas import load_definition
    from engine.core.templates import CHANNEL_FIELDS
    from engine.engagement import popups
    from engine.journeys import actions, imports, report
    from engine.messaging.channels import CHANNELS
    from engine.ops import metrics

    def enum(name: str, *path: str) -> list[str]:
        schema = load_definition(name)
        for key in path:
            schema = schema[key]
        return schema["enum"]

    assert enum("Channel") == list(CHANNELS) == list(CHANNEL_FIELDS)
    assert enum("ChannelFilter", "properties", "channel") == list(CHANNELS)
    assert enum("Provider", "properties", "channel") == list(CHANNELS)
    assert enum("Role") == list(auth.ROLES)
    assert enum("NewApiKey", "properties", "role") == list(auth.KEY_ROLES)
    assert enum("PopupReport", "properties", "event") == list(popups.REPORTS)
    assert enum("ActionExport", "properties", "columns", "items") == list(actions.COLUMNS)
    assert enum("ReportOptions", "properties", "interval") == list(report.INTERVALS)
    assert enum("ImportOptions", "properties", "format") == list(imports.FORMATS)
    assert set(enum("CampaignList", "properties", "status", "items")) == set(metrics.CAMPAIGN_STATUSES)


def test_every_declaration_loads_and_its_references_resolve():
    """A `$ref` to nothing would fail the first request that reaches it; here it fails first."""
    from engine.core.jsonschemas import api_definitions
    from engine.web import declare

    for name in api_definitions():
        assert isinstance(declare.problems(name, {"?": [None]}), list), name
