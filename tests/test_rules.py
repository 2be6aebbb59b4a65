"""The rule language, on real SQLite and PostgreSQL: exact matching sets for every op and
rule kind, NOT as an exact complement, segment inlining and its errors, event counts
(zero included), time windows, and one SQL statement for a large population."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import event, insert, select

from engine.core.errors import RuleError
from engine.core.models import Audience, AudienceMember, Event, Profile, Segment
from engine.core.rules import (
    RULES_SCHEMA,
    check_rules,
    compile_rules,
    matching_profiles,
)

NOW = datetime(2024, 6, 1, 12, 0)
EVERYONE = {1, 2, 3, 4, 5}


def ago(**kwargs: float) -> datetime:
    return NOW - timedelta(**kwargs)


PROFILES: list[dict[str, Any]] = [
    dict(id=1, email="ann@example.com", phone="+111", external_id="A1", timezone="Europe/Paris", points=10,
         created_at=ago(days=100),
         attributes={"city": "Paris", "age": 34, "vip": True, "plan": "gold",
                     "address": {"city": "Paris", "zip": "75001"}}),
    dict(id=2, email="bob@test.org", phone=None, external_id="B2", timezone="America/New_York", points=250,
         created_at=ago(days=10),
         attributes={"city": "Berlin", "age": 19, "vip": False, "plan": "silver", "address": {"city": "Berlin"}}),
    dict(id=3, email="Carl@Example.com", phone="+333", external_id=None, timezone=None, points=0,
         created_at=ago(days=40),
         attributes={"city": "berlin", "age": "34", "plan": None}),
    dict(id=4, email=None, phone="+444", external_id="D4", timezone="Europe/Paris", points=75,
         created_at=ago(days=1),
         attributes={"vip": 1}),
    dict(id=5, email="eve@example.com", phone=None, external_id="E5", timezone=None, points=5,
         created_at=ago(days=400),
         attributes={"city": "Zürich", "age": 61.5, "vip": True, "address": "unknown", "score": 10_000_000_000}),
]

#: purchases: 1 -> 2, 2 -> 3, 3 -> 1, 4 and 5 -> none. logins: last 1d, 20d, 10d, never, 8d ago.
EVENTS: list[tuple[int, str, dict[str, Any], datetime]] = [
    (1, "purchase", {"amount": 120, "sku": "A-1"}, ago(days=5)),
    (1, "purchase", {"amount": 20, "sku": "A-2"}, ago(days=40)),
    (2, "purchase", {"amount": 30, "sku": "B-2"}, ago(days=2)),
    (2, "purchase", {"amount": 70}, ago(days=3)),
    (2, "purchase", {}, ago(days=60)),
    (3, "purchase", {"amount": "big"}, ago(days=90)),
    (1, "login", {}, ago(days=1)),
    (2, "login", {}, ago(days=20)),
    (3, "login", {}, ago(days=10)),
    (3, "login", {}, ago(days=50)),
    (5, "login", {}, ago(days=8)),
]

SEGMENTS: list[dict[str, Any]] = [
    dict(id=1, name="parisians", rules={"rules": [{"field": "attributes.city", "op": "eq", "value": "Paris"}]}),
    dict(id=2, name="parisians or rich", rules={"match": "any", "rules": [
        {"segment": 1}, {"field": "points", "op": "gte", "value": 100}]}),
    dict(id=3, name="myself", rules={"rules": [{"field": "points", "op": "gt", "value": 0}, {"segment": 3}]}),
    dict(id=4, name="ping", rules={"rules": [{"segment": 5}]}),
    dict(id=5, name="pong", rules={"rules": [{"segment": 4}]}),
    dict(id=6, name="broken", rules={"rules": [{"field": "points", "op": "contains", "value": "1"}]}),
    dict(id=7, name="everyone", rules={}),
    dict(id=8, name="wraps broken", rules={"rules": [{"segment": 6}]}),
]


@pytest.fixture
def session(sessions):
    """A session on a database holding the five customers above, their events, two
    audiences (1: customers 1 and 3; 2: empty) and the segments above."""
    with sessions() as setup, setup.begin():
        setup.execute(insert(Profile), PROFILES)
        setup.execute(insert(Event), [dict(profile_id=p, name=n, properties=props, occurred_at=at)
                                      for p, n, props, at in EVENTS])
        setup.execute(insert(Audience), [dict(id=1, name="list one"), dict(id=2, name="empty list")])
        setup.execute(insert(AudienceMember), [dict(audience_id=1, profile_id=1), dict(audience_id=1, profile_id=3)])
        setup.execute(insert(Segment), SEGMENTS)
    with sessions() as s:
        yield s


def matches(session, rules: dict[str, Any]) -> set[int]:
    return set(session.scalars(matching_profiles(session, rules, NOW)))


def rule(field: str, op: str, *value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, **({"value": value[0]} if value else {})}


def only(*rules: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"match": match, "rules": list(rules)}


CASES: list[tuple[str, dict[str, Any], set[int]]] = [
    # profile fields (customer 4 has no email: it matches no comparison, not even ne)
    ("email eq", only(rule("email", "eq", "ann@example.com")), {1}),
    ("email ne skips null", only(rule("email", "ne", "ann@example.com")), {2, 3, 5}),
    ("email contains is case-sensitive", only(rule("email", "contains", "example")), {1, 5}),
    ("email not_contains", only(rule("email", "not_contains", "example")), {2, 3}),
    ("email starts_with", only(rule("email", "starts_with", "bob")), {2}),
    ("email starts_with is literal", only(rule("email", "starts_with", "_ob%")), set()),
    ("email in", only(rule("email", "in", ["bob@test.org", "eve@example.com"])), {2, 5}),
    ("email not_in skips null", only(rule("email", "not_in", ["bob@test.org"])), {1, 3, 5}),
    ("email exists", only(rule("email", "exists")), {1, 2, 3, 5}),
    ("email not_exists", only(rule("email", "not_exists")), {4}),
    ("email gt orders by code point", only(rule("email", "gt", "b")), {2, 5}),
    ("phone not_exists", only(rule("phone", "not_exists")), {2, 5}),
    ("external_id eq", only(rule("external_id", "eq", "B2")), {2}),
    ("timezone eq", only(rule("timezone", "eq", "Europe/Paris")), {1, 4}),
    ("points gt", only(rule("points", "gt", 50)), {2, 4}),
    ("points gte", only(rule("points", "gte", 75)), {2, 4}),
    ("points lt", only(rule("points", "lt", 10)), {3, 5}),
    ("points lte", only(rule("points", "lte", 10)), {1, 3, 5}),
    ("points eq", only(rule("points", "eq", 0)), {3}),
    ("points ne", only(rule("points", "ne", 0)), {1, 2, 4, 5}),
    ("points in", only(rule("points", "in", [5, 10])), {1, 5}),
    ("points not_in", only(rule("points", "not_in", [5, 10])), {2, 3, 4}),
    ("points gt fraction", only(rule("points", "gt", 9.5)), {1, 2, 4}),
    ("created_at relative", only(rule("created_at", "gte", "-30d")), {2, 4}),
    ("created_at relative lt", only(rule("created_at", "lt", "-30d")), {1, 3, 5}),
    ("created_at iso", only(rule("created_at", "lt", "2023-06-01T00:00:00Z")), {5}),
    ("created_at date", only(rule("created_at", "gt", "2024-05-01")), {2, 4}),
    # attributes: typed by the value, missing / null / other types match only not_exists
    ("attr eq", only(rule("attributes.city", "eq", "Paris")), {1}),
    ("attr eq case-sensitive", only(rule("attributes.city", "eq", "paris")), set()),
    ("attr ne skips missing", only(rule("attributes.city", "ne", "Paris")), {2, 3, 5}),
    ("attr in", only(rule("attributes.city", "in", ["Berlin", "berlin"])), {2, 3}),
    ("attr in empty", only(rule("attributes.city", "in", [])), set()),
    ("attr not_in skips missing", only(rule("attributes.city", "not_in", ["Berlin"])), {1, 3, 5}),
    ("attr not_in empty", only(rule("attributes.city", "not_in", [])), {1, 2, 3, 5}),
    ("attr starts_with unicode", only(rule("attributes.city", "starts_with", "Zü")), {5}),
    ("attr contains", only(rule("attributes.city", "contains", "rli")), {2, 3}),
    ("attr not_contains", only(rule("attributes.city", "not_contains", "rli")), {1, 5}),
    ("attr text gt by code point", only(rule("attributes.city", "gt", "Paris")), {3, 5}),
    ("attr number gt skips strings", only(rule("attributes.age", "gt", 30)), {1, 5}),
    ("attr number eq", only(rule("attributes.age", "eq", 34)), {1}),
    ("attr string eq is not a number", only(rule("attributes.age", "eq", "34")), {3}),
    ("attr number gte", only(rule("attributes.age", "gte", 19)), {1, 2, 5}),
    ("attr number lt", only(rule("attributes.age", "lt", 20)), {2}),
    ("attr number lte fraction", only(rule("attributes.age", "lte", 61.5)), {1, 2, 5}),
    ("attr number in", only(rule("attributes.age", "in", [19, 61.5])), {2, 5}),
    ("attr number ne skips other types", only(rule("attributes.age", "ne", 34)), {2, 5}),
    ("number compare on text", only(rule("attributes.city", "gt", 5)), set()),
    ("boolean compare on text", only(rule("attributes.plan", "eq", True)), set()),
    ("attr big number", only(rule("attributes.score", "gte", 10_000_000_000)), {5}),
    ("attr boolean true", only(rule("attributes.vip", "eq", True)), {1, 5}),
    ("attr boolean false", only(rule("attributes.vip", "eq", False)), {2}),
    ("attr boolean ne", only(rule("attributes.vip", "ne", True)), {2}),
    ("attr 1 is a number", only(rule("attributes.vip", "eq", 1)), {4}),
    ("attr exists", only(rule("attributes.vip", "exists")), {1, 2, 4, 5}),
    ("attr null does not exist", only(rule("attributes.plan", "exists")), {1, 2}),
    ("attr not_exists", only(rule("attributes.plan", "not_exists")), {3, 4, 5}),
    ("nested eq", only(rule("attributes.address.city", "eq", "Paris")), {1}),
    ("nested exists", only(rule("attributes.address.city", "exists")), {1, 2}),
    ("nested under a string", only(rule("attributes.address.city", "not_exists")), {3, 4, 5}),
    ("nested starts_with", only(rule("attributes.address.zip", "starts_with", "75")), {1}),
    ("whole object exists", only(rule("attributes.address", "exists")), {1, 2, 5}),
    # groups
    ("empty all", {"match": "all", "rules": []}, EVERYONE),
    ("empty any", {"match": "any", "rules": []}, set()),
    ("empty object", {}, EVERYONE),
    ("any", only(rule("attributes.city", "eq", "Paris"), rule("points", "gt", 200), match="any"), {1, 2}),
    ("all", only(rule("email", "contains", "example"), rule("attributes.vip", "eq", True)), {1, 5}),
    ("not includes missing", only({"not": only(rule("attributes.city", "eq", "Paris"))}), {2, 3, 4, 5}),
    ("not of empty all", only({"not": only()}), set()),
    ("nested groups", only(
        only(rule("attributes.city", "eq", "Berlin"), rule("attributes.city", "eq", "berlin"), match="any"),
        {"not": only(rule("points", "eq", 0))},
    ), {2}),
    ("not of any", only({"not": only(rule("points", "lt", 10), rule("email", "not_exists"), match="any")}), {1, 2}),
    # membership
    ("audience", only({"audience": 1}), {1, 3}),
    ("audience negate", only({"audience": 1, "negate": True}), {2, 4, 5}),
    ("empty audience", only({"audience": 2}), set()),
    ("segment", only({"segment": 1}), {1}),
    ("segment in segment", only({"segment": 2}), {1, 2}),
    ("segment negate", only({"segment": 2, "negate": True}), {3, 4, 5}),
    ("segment without rules", only({"segment": 7}), EVERYONE),
    ("segment and field", only({"segment": 2}, rule("points", "lt", 100)), {1}),
    # events
    ("did event", only({"event": "purchase"}), {1, 2, 3}),
    ("never did event", only({"event": "purchase", "count": {"op": "eq", "value": 0}}), {4, 5}),
    ("never logged in", only({"event": "login", "count": {"op": "eq", "value": 0}}), {4}),
    ("count gte 2", only({"event": "purchase", "count": {"op": "gte", "value": 2}}), {1, 2}),
    ("count eq 3", only({"event": "purchase", "count": {"op": "eq", "value": 3}}), {2}),
    ("count lt 2", only({"event": "purchase", "count": {"op": "lt", "value": 2}}), {3, 4, 5}),
    ("count lte 1", only({"event": "purchase", "count": {"op": "lte", "value": 1}}), {3, 4, 5}),
    ("count ne 0", only({"event": "purchase", "count": {"op": "ne", "value": 0}}), {1, 2, 3}),
    ("count gt 2", only({"event": "purchase", "count": {"op": "gt", "value": 2}}), {2}),
    ("count ne 2", only({"event": "purchase", "count": {"op": "ne", "value": 2}}), {2, 3, 4, 5}),
    ("unknown event never happened", only({"event": "refund", "count": {"op": "eq", "value": 0}}), EVERYONE),
    ("within", only({"event": "purchase", "within": "7d"}), {1, 2}),
    ("within count", only({"event": "purchase", "within": "7d", "count": {"op": "gte", "value": 2}}), {2}),
    ("within count zero", only({"event": "purchase", "within": "1w", "count": {"op": "eq", "value": 0}}), {3, 4, 5}),
    ("within hours", only({"event": "login", "within": "25h"}), {1}),
    ("where number", only({"event": "purchase", "where": [{"property": "amount", "op": "gt", "value": 50}]}), {1, 2}),
    ("where skips other types", only({"event": "purchase", "where": [{"property": "amount", "op": "gt", "value": 10}]}),
     {1, 2}),
    ("where string", only({"event": "purchase", "where": [{"property": "amount", "op": "eq", "value": "big"}]}), {3}),
    ("where within", only({"event": "purchase", "within": "4d",
                           "where": [{"property": "amount", "op": "gt", "value": 50}]}), {2}),
    ("where starts_with", only({"event": "purchase",
                                "where": [{"property": "sku", "op": "starts_with", "value": "B"}]}),
     {2}),
    ("where in", only({"event": "purchase", "where": [{"property": "sku", "op": "in", "value": ["A-2", "B-2"]}]}),
     {1, 2}),
    ("where contains", only({"event": "purchase", "where": [{"property": "sku", "op": "contains", "value": "-"}]}),
     {1, 2}),
    ("where two conditions", only({"event": "purchase", "where": [
        {"property": "amount", "op": "gte", "value": 20}, {"property": "amount", "op": "lte", "value": 30}]}), {1, 2}),
    ("where count", only({"event": "purchase", "count": {"op": "gte", "value": 2},
                          "where": [{"property": "amount", "op": "exists"}]}), {1, 2}),
    ("where count zero", only({"event": "purchase", "count": {"op": "eq", "value": 0},
                               "where": [{"property": "amount", "op": "lt", "value": 25}]}), {2, 3, 4, 5}),
    ("last within", only({"event": "login", "last": {"within": "7d"}}), {1}),
    ("last within 9d", only({"event": "login", "last": {"within": "9d"}}), {1, 5}),
    ("last before", only({"event": "login", "last": {"before": "7d"}}), {2, 3, 5}),
    ("last before 15d", only({"event": "login", "last": {"before": "15d"}}), {2}),
    ("last between", only({"event": "login", "last": {"within": "30d", "before": "9d"}}), {2, 3}),
    ("last with where", only({"event": "purchase", "last": {"before": "4d"},
                              "where": [{"property": "amount", "op": "exists"}]}), {1, 3}),
    ("not last within", only({"not": only({"event": "login", "last": {"within": "7d"}})}), {2, 3, 4, 5}),
]


@pytest.mark.parametrize("rules, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules_match_exactly(session, rules, expected):
    assert matches(session, rules) == expected
    # every rule is true or false, never NULL: NOT is the exact complement
    assert matches(session, {"rules": [{"not": rules}]}) == EVERYONE - expected


def test_example_rules_follow_the_schema():
    Draft202012Validator.check_schema(RULES_SCHEMA)
    validator = Draft202012Validator(RULES_SCHEMA)
    for name, rules, _ in CASES:
        assert not list(validator.iter_errors(rules)), name
        assert check_rules(rules) == [], name


def test_schema_embeds_with_its_defs_hoisted():
    """As the filter node embeds it: `$defs` at the root of the settings schema."""
    inner = {k: v for k, v in RULES_SCHEMA.items() if k not in ("$defs", "$schema", "$id")}
    settings = {"type": "object", "$defs": RULES_SCHEMA["$defs"], "properties": {"rules": inner}}
    Draft202012Validator.check_schema(settings)
    validator = Draft202012Validator(settings)
    assert validator.is_valid({"rules": only({"not": only(rule("points", "gt", 1))}, {"segment": 1})})
    assert not validator.is_valid({"rules": only(rule("points", "between", 1))})
    nested = {"type": "object", "properties": {"rules": RULES_SCHEMA}}  # embedded as is
    assert Draft202012Validator(nested).is_valid({"rules": only(only(rule("email", "exists")))})
    assert not Draft202012Validator(nested).is_valid({"rules": only(only(rule("email", "exists", 1)))})


def test_one_statement_for_a_large_population(sessions):
    size = 20_000
    with sessions() as setup, setup.begin():
        setup.execute(insert(Profile), [
            dict(id=i, email=f"c{i}@example.com", points=i % 100,
                 attributes={"city": "Paris" if i % 3 == 0 else "Lyon", "tier": {"level": i % 5}})
            for i in range(1, size + 1)
        ])
        setup.execute(insert(Event), [dict(profile_id=i, name="purchase", occurred_at=ago(days=i % 60))
                                      for i in range(1, size + 1, 2)])
        setup.execute(insert(Audience), [dict(id=1, name="list")])
        setup.execute(insert(AudienceMember), [dict(audience_id=1, profile_id=i) for i in range(1, size + 1, 7)])
    rules = only(
        rule("attributes.city", "eq", "Paris"),
        rule("attributes.tier.level", "gte", 2),
        {"match": "any", "rules": [
            {"event": "purchase", "within": "30d"},
            {"event": "purchase", "count": {"op": "eq", "value": 0}},
        ]},
        {"not": only(rule("points", "lt", 10))},
    )
    expected = {
        i for i in range(1, size + 1)
        if i % 3 == 0 and i % 5 >= 2 and (i % 2 == 0 or i % 60 <= 30) and i % 100 >= 10
    }
    found, statements = _run_counting(sessions, rules)
    assert found == expected
    assert len(statements) == 1, statements

    # membership rules add one lookup per named audience or segment, never per customer
    rules["rules"].append({"audience": 1, "negate": True})
    found, statements = _run_counting(sessions, rules)
    assert found == {i for i in expected if (i - 1) % 7 != 0}
    assert len(statements) == 2 and "FROM audiences" in statements[0], statements


def _run_counting(sessions, rules: dict[str, Any]) -> tuple[set[int], list[str]]:
    """The ids `matching_profiles` finds, and the SQL statements it took."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with sessions() as session:
        session.execute(select(1))  # begin the transaction outside the count
        bind = session.get_bind()
        event.listen(bind, "before_cursor_execute", count)
        try:
            found = set(session.scalars(matching_profiles(session, rules, NOW)))
        finally:
            event.remove(bind, "before_cursor_execute", count)
    return found, statements


# -- errors --------------------------------------------------------------------------


def _error(session, rules: dict[str, Any]) -> RuleError:
    with pytest.raises(RuleError) as caught:
        compile_rules(rules, session, NOW)
    return caught.value


@pytest.mark.parametrize("rules, message", [
    (only({"segment": 3}), "references itself"),
    (only({"segment": 4}), "references itself"),
    (only({"segment": 99}), "segment 99 does not exist"),
    (only({"segment": 6}), "invalid rules"),
    (only({"segment": 8}), "invalid rules"),
], ids=["self", "through another", "missing", "invalid", "invalid inside"])
def test_segment_errors_point_at_the_segment_rule(session, rules, message):
    error = _error(session, only(rule("points", "gt", 0), {"match": "any", "rules": rules["rules"]}))
    assert error.details[0]["pointer"] == "/rules/1/rules/0/segment"
    assert message in error.message and message in error.details[0]["message"]
    assert error.code == "invalid_rule"


def test_missing_audience_is_an_error(session):
    error = _error(session, only({"audience": 99}))
    assert error.details == [{"pointer": "/rules/0/audience", "message": "audience 99 does not exist"}]


BAD_RULES: list[tuple[str, Any, list[str]]] = [
    ("not an object", [], [""]),
    ("bad match", {"match": "some", "rules": []}, ["/match"]),
    ("rules not a list", {"rules": {}}, ["/rules"]),
    ("top-level not is not a group", {"not": only()}, [""]),
    ("unknown rule", only({"foo": 1}), ["/rules/0"]),
    ("two kinds", only({"field": "email", "op": "exists", "event": "x"}), ["/rules/0"]),
    ("unknown key", only({"field": "email", "op": "exists", "extra": 1}), ["/rules/0/extra"]),
    ("unknown field", only(rule("nickname", "eq", "x")), ["/rules/0/field"]),
    ("numeric path part", only(rule("attributes.items.0", "eq", "x")), ["/rules/0/field"]),
    ("bare attributes", only(rule("attributes", "exists")), ["/rules/0/field"]),
    ("unknown op", only(rule("email", "between", "x")), ["/rules/0/op"]),
    ("op for another type", only(rule("points", "contains", "1")), ["/rules/0/op"]),
    ("string for number", only(rule("points", "eq", "ten")), ["/rules/0/value"]),
    ("boolean for number", only(rule("points", "gt", True)), ["/rules/0/value"]),
    ("number for string", only(rule("email", "gt", 5)), ["/rules/0/value"]),
    ("contains a number", only(rule("attributes.age", "contains", 3)), ["/rules/0/value"]),
    ("order a boolean", only(rule("attributes.vip", "gt", False)), ["/rules/0/value"]),
    ("eq an object", only(rule("attributes.address", "eq", {"city": "Paris"})), ["/rules/0/value"]),
    ("in not a list", only(rule("attributes.age", "in", "x")), ["/rules/0/value"]),
    ("in mixed types", only(rule("attributes.age", "in", [1, "a"])), ["/rules/0/value"]),
    ("in an object", only(rule("attributes.age", "in", [1, {"a": 1}])), ["/rules/0/value/1", "/rules/0/value"]),
    ("exists with value", only(rule("email", "exists", "x")), ["/rules/0/value"]),
    ("eq without value", only(rule("email", "eq")), ["/rules/0/value"]),
    ("bad time", only(rule("created_at", "gt", "yesterday")), ["/rules/0/value"]),
    ("nested", only(only(rule("email", "eq", "a"), rule("x", "eq", 1), match="any")), ["/rules/0/rules/1/field"]),
    ("in not", only({"not": only(rule("points", "gt", True))}), ["/rules/0/not/rules/0/value"]),
    ("not of a rule", only({"not": rule("points", "gt", 1)}), ["/rules/0/not"]),
    ("segment id", only({"segment": "abc"}), ["/rules/0/segment"]),
    ("negate", only({"audience": 1, "negate": "yes"}), ["/rules/0/negate"]),
    ("event name", only({"event": ""}), ["/rules/0/event"]),
    ("count value", only({"event": "x", "count": {"op": "eq", "value": -1}}), ["/rules/0/count/value"]),
    ("count op", only({"event": "x", "count": {"op": "about", "value": 1}}), ["/rules/0/count/op"]),
    ("within", only({"event": "x", "within": "soon"}), ["/rules/0/within"]),
    ("negative within", only({"event": "x", "within": "-7d"}), ["/rules/0/within"]),
    ("empty last", only({"event": "x", "last": {}}), ["/rules/0/last"]),
    ("last with count", only({"event": "x", "last": {"within": "1d"}, "count": {"op": "eq", "value": 0}}),
     ["/rules/0/count"]),
    ("last window empty", only({"event": "x", "last": {"within": "1d", "before": "7d"}}), ["/rules/0/last"]),
    ("last unknown key", only({"event": "x", "last": {"after": "1d"}}), ["/rules/0/last/after"]),
    ("where op", only({"event": "x", "where": [{"property": "a", "op": "starts", "value": "b"}]}),
     ["/rules/0/where/0/op"]),
    ("where property", only({"event": "x", "where": [{"property": "a..b", "op": "eq", "value": "b"}]}),
     ["/rules/0/where/0/property"]),
    ("where value", only({"event": "x", "where": [{"property": "a", "op": "gt", "value": None}]}),
     ["/rules/0/where/0/value"]),
    ("several problems", only(rule("nickname", "eq", 1), rule("points", "eq", "x")),
     ["/rules/0/field", "/rules/1/value"]),
]


@pytest.mark.parametrize("rules, pointers", [c[1:] for c in BAD_RULES], ids=[c[0] for c in BAD_RULES])
def test_bad_rules_are_reported_with_pointers(session, rules, pointers):
    problems = check_rules(rules)
    assert [p["pointer"] for p in problems] == pointers
    assert all(p["message"] for p in problems)
    error = _error(session, rules)
    assert error.details == problems
    assert check_rules(rules, "/nodes/2/settings/rules")[0]["pointer"] == "/nodes/2/settings/rules" + pointers[0]


@pytest.mark.parametrize("rules", [c[1] for c in BAD_RULES if c[0] not in
                                   ("bad time", "in mixed types", "last window empty")],
                         ids=[c[0] for c in BAD_RULES if c[0] not in
                              ("bad time", "in mixed types", "last window empty")])
def test_schema_rejects_bad_rules(rules):
    """The schema catches what it can express; check_rules is the full check."""
    assert not Draft202012Validator(RULES_SCHEMA).is_valid(rules)


def test_matching_profiles_restricts_a_batch_like_query(session):
    query = matching_profiles(session, only({"event": "purchase"}), NOW)
    assert set(session.scalars(query.where(Profile.id.in_([2, 4, 5])))) == {2}
