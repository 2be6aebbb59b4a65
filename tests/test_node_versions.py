"""Versioned node types: a node keeps the version of its type it was saved with.

Throwaway types (`isolated_registry`): `test.score` version 1 sends everyone out by `kept`
(settings `bonus`), version 2 splits by points into `high` and `low` (settings `threshold`),
and a migration turns a version 1 `bonus` into a version 2 `threshold`. The engine tests run
on SQLite and PostgreSQL with a real Redis and a virtual clock, with exact counts.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.core import registry
from engine.core.errors import DocumentInvalid, InvalidInput, RegistrationError
from engine.core.graph import CampaignGraph, GraphCache
from engine.core.models import CampaignVersion, Profile
from engine.core.registry import Migration, NodeType
from engine.core.validation import errors, validate_document
from engine.journeys import campaigns
from tests.support import (
    add_profiles,
    doc,
    error_of,
    launch,
    ok,
    points,
    positions,
    stats,
)

TYPE = "test.score"
ALL = ("all", "select_segment", {"source": "all"})


class ScoreV1(NodeType):
    type = TYPE
    version = 1
    label = "Score"
    category = "flow"
    ports = ("kept",)
    schema = {"type": "object", "properties": {"bonus": {"type": "integer", "minimum": 0, "default": 1}},
              "additionalProperties": False}

    def process(self, batch):
        return {"kept": batch}


class ScoreV2(NodeType):
    type = TYPE
    version = 2
    label = "Score"
    category = "flow"
    ports = ("high", "low")
    schema = {"type": "object", "properties": {"threshold": {"type": "integer", "minimum": 0}},
              "required": ["threshold"], "additionalProperties": False}

    def process(self, batch):
        high = batch.matching(select(Profile.id).where(Profile.points >= self.settings["threshold"]), Profile.id)
        return {"high": high, "low": batch.without(high)}


def bonus_to_threshold(settings: dict) -> dict:
    return {"threshold": settings["bonus"] * 10}


@pytest.fixture
def v1(isolated_registry):
    """Only version 1 is installed (version 2 comes later in some tests)."""
    isolated_registry.register(ScoreV1)
    return isolated_registry


@pytest.fixture
def both(v1):
    """Both versions and the migration from 1 to 2."""
    v1.register(ScoreV2)
    v1.migration(TYPE, 1, 2, ports={"kept": "high"})(bonus_to_threshold)
    return v1


def scoring(score: dict, *, version: int | None = None, port: str = "kept") -> dict:
    """everyone -> wait 1 day -> score -(port)-> 5 points"""
    document = doc([ALL, ("w", "wait", {"amount": 1, "unit": "days"}), ("sc", TYPE, score),
                    ("pts", "award_points", {"points": 5})],
                   [("all", "out", "w"), ("w", "out", "sc"), ("sc", port, "pts")])
    if version is not None:
        document["nodes"][2]["version"] = version
    return document


def stored_document(h, campaign_id: int) -> dict:
    with h.session() as s:
        version_id = campaigns.get(s, campaign_id).version_id
        return s.get(CampaignVersion, version_id).document


# --------------------------------------------------------------------------- registration


def test_versions_are_registered_side_by_side_and_the_newest_is_offered(both):
    assert registry.get(TYPE) is ScoreV2 and registry.get(TYPE, 1) is ScoreV1 and registry.get(TYPE, 3) is None
    assert registry.versions(TYPE) == [1, 2]
    assert [c for c in registry.all_types() if c.type == TYPE] == [ScoreV2]
    assert (ScoreV2.describe()["versions"], ScoreV2.describe()["upgrade_to"]) == ([1, 2], None)
    assert ScoreV1.describe()["upgrade_to"] == 2
    registry.unregister(TYPE, 2)
    assert registry.get(TYPE) is ScoreV1 and registry.upgrade_path(TYPE, 1) == [], "its migration went with it"


def test_a_taken_version_is_refused_unless_replaced(v1):
    class Other(ScoreV1):
        pass

    with pytest.raises(RegistrationError, match=r"version 1 of node type 'test.score' is already registered"):
        v1.register(Other)
    v1.register(ScoreV1)  # the same class again: nothing to refuse
    v1.register(Other, replace=True)
    assert registry.get(TYPE, 1) is Other


@pytest.mark.parametrize("bad", [0, -1, "2", True, 1.5])
def test_a_version_must_be_a_whole_number_from_1(isolated_registry, bad):
    odd = type("Odd", (ScoreV1,), {"version": bad})
    with pytest.raises(RegistrationError, match="version must be a whole number from 1"):
        isolated_registry.register(odd)


def test_every_version_agrees_on_being_an_entry_node(v1):
    trigger = type("ScoreTrigger", (ScoreV2,), {"entry": True, "category": "trigger"})
    with pytest.raises(RegistrationError, match=r"version 1 is not an entry node"):
        v1.register(trigger)


def test_a_migration_needs_both_versions_registered(v1):
    with pytest.raises(RegistrationError, match=r"version 2 is not registered \(registered versions: 1\)"):
        v1.migration(TYPE, 1, 2)(bonus_to_threshold)
    with pytest.raises(RegistrationError, match=r"version 1 is not registered \(registered versions: none\)"):
        v1.add_migration(Migration("test.nothing", 1, 2, bonus_to_threshold))


def test_a_migration_goes_from_one_version_to_the_next_once(both):
    both.register(type("ScoreV3", (ScoreV2,), {"version": 3}))
    with pytest.raises(RegistrationError, match=r"from one version to the next \(1 to 2\)"):
        both.migration(TYPE, 1, 3)(bonus_to_threshold)
    with pytest.raises(RegistrationError, match="already declared"):
        both.migration(TYPE, 1, 2)(lambda settings: settings)
    with pytest.raises(RegistrationError, match="renames port 'gone', which version 1 does not have"):
        both.migration(TYPE, 1, 2, ports={"gone": "high"}, replace=True)(bonus_to_threshold)
    with pytest.raises(RegistrationError, match="renames a port to 'middle', which version 2 does not have"):
        both.migration(TYPE, 1, 2, ports={"kept": "middle"}, replace=True)(bonus_to_threshold)
    both.migration(TYPE, 1, 2, ports={"kept": "high"})(bonus_to_threshold)  # the same again is harmless
    with pytest.raises(registry.NoUpgradePath, match="no migration from version 2 to 3"):
        registry.upgrade_path(TYPE, 1)
    assert ScoreV1.describe()["upgrade_to"] is None, "no path to the newest: no upgrade offered"


# --------------------------------------------------------------------------- validation


def test_each_node_is_validated_against_its_own_version(both):
    assert errors(validate_document(scoring({"bonus": 2}, version=1))) == []
    found = errors(validate_document(scoring({"bonus": 2}, version=2)))  # v1 settings and port on v2
    assert {(p.code, p.pointer) for p in found} == {("invalid_settings", "/nodes/2/settings/threshold"),
                                                    ("invalid_settings", "/nodes/2/settings/bonus")}
    found = errors(validate_document(scoring({"threshold": 3}, version=2)))
    assert [(p.code, p.pointer) for p in found] == [("unknown_port", "/edges/2/source_port")]
    assert "its ports: high, low" in found[0].message
    assert errors(validate_document(scoring({"threshold": 3}, port="high"))) == [], "no version: the newest"


def test_an_unknown_version_names_the_field(both):
    (problem,) = errors(validate_document(scoring({"bonus": 2}, version=7)))
    assert (problem.code, problem.pointer, problem.node_id) == ("unknown_version", "/nodes/2/version", "sc")
    assert "version 7 of the node type 'test.score'" in problem.message
    assert "installed versions: 1, 2" in problem.message


def test_an_entry_node_on_an_unknown_version_is_reported_once(both):
    document = scoring({"bonus": 2}, version=1)
    document["nodes"][0]["version"] = 9
    found = errors(validate_document(document))
    assert [(p.code, p.pointer) for p in found] == [("unknown_version", "/nodes/0/version")], \
        "still the campaign's entry node: no 'no entry' and no 'unreachable' on top"


def test_a_malformed_version_is_the_schemas_to_report_once(both):
    found = errors(validate_document(scoring({"bonus": 2}, version="1")))  # type: ignore[arg-type]
    assert [(p.code, p.pointer) for p in found] == [("invalid_field", "/nodes/2/version")]


# --------------------------------------------------------------------------- the engine


def test_a_campaign_on_version_1_keeps_running_after_version_2_is_installed(harness, v1):
    with harness.transaction() as s:
        ids = add_profiles(s, 30, points=lambda i: i)
    old = launch(harness, scoring({"bonus": 2}))  # saved with no version: pinned to the newest, 1
    assert stored_document(harness, old)["nodes"][2]["version"] == 1
    assert positions(harness, old) == {("w", "active"): 30}, "everyone waits a day at the wait node"

    v1.register(ScoreV2)  # a new release installs version 2, with other settings and ports
    harness.rt.executor.graphs = GraphCache()  # as a worker started after the release would
    assert type(CampaignGraph.build(stored_document(harness, old)).nodes["sc"]) is ScoreV1
    harness.machine.advance(timedelta(days=1))

    st = stats(harness, old)
    assert st["w"]["left"] == {"out": 30}
    assert (st["sc"]["entered"], st["sc"]["left"]) == (30, {"kept": 30}), "version 1's process ran"
    assert st["pts"]["entered"] == 30
    assert points(harness) == {pid: i + 5 for i, pid in enumerate(ids)}
    assert positions(harness, old) == {("pts", "done"): 30}

    new = launch(harness, scoring({"threshold": 20}, port="high"))  # a new campaign gets version 2
    assert stored_document(harness, new)["nodes"][2]["version"] == 2
    harness.machine.advance(timedelta(days=1))
    assert stats(harness, new)["sc"]["left"] == {"high": 15, "low": 15}, "points are now 5..34: 20 and up are high"


def test_upgrading_a_campaign_runs_the_migrations_into_a_new_version(harness, both):
    with harness.transaction() as s:
        add_profiles(s, 12, points=lambda i: i * 10)
    cid = launch(harness, scoring({"bonus": 6}, version=1))
    with harness.transaction() as s:
        version, report = campaigns.upgrade_nodes(s, cid, harness.clock.now())
        number = version.number
    assert [r.to_dict() for r in report] == [{"node_id": "sc", "type": TYPE, "from_version": 1, "to_version": 2}]
    upgraded = stored_document(harness, cid)
    assert number == 2 and upgraded["nodes"][2] | {"position": None} == {
        "id": "sc", "type": TYPE, "version": 2, "settings": {"threshold": 60}, "position": None}
    assert upgraded["edges"][2] == {"id": "e2", "source": "sc", "source_port": "high", "target": "pts"}, \
        "the edge follows the port the migration renamed"
    assert errors(validate_document(upgraded)) == []

    harness.machine.advance(timedelta(days=1))  # the 12 in flight stay on version 1 of the campaign
    st = stats(harness, cid)
    assert st["sc"]["left"] == {"kept": 12} and st["pts"]["entered"] == 12


def test_nothing_to_upgrade_makes_no_version(harness, both):
    cid = launch(harness, scoring({"threshold": 1}, port="high"))
    with harness.transaction() as s:
        version, report = campaigns.upgrade_nodes(s, cid)
        assert (version.number, report) == (1, [])


def test_a_node_without_a_migration_path_stays_and_is_reported(harness, v1):
    v1.register(ScoreV2)  # no migration
    cid = launch(harness, scoring({"bonus": 2}, version=1))
    with harness.transaction() as s:
        version, report = campaigns.upgrade_nodes(s, cid)
        assert version.number == 1
    (kept,) = report
    assert (kept.node_id, kept.from_version, kept.to_version) == ("sc", 1, None)
    assert "no migration from version 1 to 2" in kept.reason


def test_a_migration_that_breaks_the_settings_is_refused_by_name(harness, v1):
    v1.register(ScoreV2)
    v1.migration(TYPE, 1, 2)(lambda settings: {"threshold": -1})  # below the minimum, and no port renamed
    cid = launch(harness, scoring({"bonus": 2}, version=1, port="kept"))
    with pytest.raises(DocumentInvalid) as refused, harness.transaction() as s:
        campaigns.upgrade_nodes(s, cid)
    assert {d["pointer"] for d in refused.value.details} == {"/nodes/2/settings/threshold"}
    v1.migration(TYPE, 1, 2, replace=True)(lambda settings: settings["nope"])
    with pytest.raises(InvalidInput) as failed, harness.transaction() as s:
        campaigns.upgrade_nodes(s, cid)
    assert failed.value.details[0]["pointer"] == "/nodes/2/settings" and "KeyError" in failed.value.message
    assert stored_document(harness, cid)["nodes"][2]["version"] == 1, "nothing was saved"


# --------------------------------------------------------------------------- the API


def test_the_palette_lists_the_newest_and_an_old_version_keeps_its_form(api, both):
    listed = {t["type"]: t for t in ok(api.get("/api/node-types"))}
    assert (listed[TYPE]["version"], listed[TYPE]["versions"], listed[TYPE]["ports"]) == (2, [1, 2], ["high", "low"])
    old = ok(api.get(f"/api/node-types/{TYPE}/versions/1"))
    assert (old["version"], old["ports"], old["upgrade_to"]) == (1, ["kept"], 2)
    assert old["schema"] == ScoreV1.schema
    error = error_of(api.get(f"/api/node-types/{TYPE}/versions/9"), 404, "not_found")
    assert "installed versions: 1, 2" in error["message"]
    error_of(api.get("/api/node-types/test.nothing/versions/1"), 404, "not_found")


def test_ports_honour_the_version(api, both):
    assert ok(api.post(f"/api/node-types/{TYPE}/ports", json={"settings": {}, "version": 1})) == {"ports": ["kept"]}
    assert ok(api.post(f"/api/node-types/{TYPE}/ports", json={"settings": {}})) == {"ports": ["high", "low"]}
    for bad, says in ((3, "3 is not an installed version"), ("1", "whole number"), (0, "whole number")):
        error = error_of(api.post(f"/api/node-types/{TYPE}/ports", json={"settings": {}, "version": bad}),
                         400, "invalid_input")
        assert error["details"][0]["pointer"] == "/version" and says in error["message"]


def test_the_editor_upgrades_a_node_through_the_api(api, both):
    answer = ok(api.post(f"/api/node-types/{TYPE}/upgrade", json={"version": 1, "settings": {}}))
    assert answer == {"type": TYPE, "from_version": 1, "version": 2, "settings": {"threshold": 10},
                      "ports": ["high", "low"], "port_renames": {"kept": "high"}}, \
        "version 1's default bonus (1) was filled in first"
    error = error_of(api.post(f"/api/node-types/{TYPE}/upgrade", json={"version": 1, "settings": {"bonus": -1}}),
                     400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/settings/bonus"]
    error = error_of(api.post(f"/api/node-types/{TYPE}/upgrade", json={"settings": {}}), 400, "invalid_input")
    assert error["details"][0]["pointer"] == "/version"


def test_an_upgrade_without_a_migration_is_a_conflict(api, v1):
    v1.register(ScoreV2)
    error = error_of(api.post(f"/api/node-types/{TYPE}/upgrade", json={"version": 1, "settings": {}}),
                     409, "invalid_state")
    assert error["details"][0]["pointer"] == "/version" and "keeps working" in error["message"]


def test_saving_writes_each_nodes_version_and_refuses_an_unknown_one(api, harness, both):
    created = ok(api.post("/api/campaigns", json=scoring({"threshold": 5}, port="high")), 201)
    fetched = ok(api.get(f"/api/campaigns/{created['id']}"))
    assert [n.get("version") for n in fetched["document"]["nodes"]] == [1, 1, 2, 1]
    again = ok(api.put(f"/api/campaigns/{created['id']}", json=fetched["document"]))
    assert again["version"] == 1, "the same document, versions written out: no new campaign version"
    error = error_of(api.post("/api/campaigns", json=scoring({"bonus": 1}, version=5)), 422, "invalid_document")
    assert [(d["code"], d["pointer"]) for d in error["details"]] == [("unknown_version", "/nodes/2/version")]
    problems = ok(api.post("/api/campaigns/validate", json=scoring({"bonus": 1}, version=5)))["problems"]
    assert ("unknown_version", "/nodes/2/version") in {(p["code"], p["pointer"]) for p in problems}
