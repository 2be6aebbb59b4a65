"""The guide's node on both databases, with customers whose attribute is not a number."""

from __future__ import annotations

from acme_nodes import HighValue

from engine.sdk.testing import registered, run

DOCUMENT = {
    "name": "High value",
    "nodes": [{"id": "all", "type": "select_segment", "settings": {"source": "all"}},
              {"id": "split", "type": "acme.high_value", "settings": {"threshold": 100}},
              {"id": "bonus", "type": "award_points", "settings": {"points": 5}}],
    "edges": [{"id": "e1", "source": "all", "source_port": "out", "target": "split"},
              {"id": "e2", "source": "split", "source_port": "high", "target": "bonus"}],
}

#: lifetime values as customers' data really holds them: numbers, numbers as text, junk
VALUES = [250, 100, 99.5, "n/a", "", None, [1000], {"v": 1000}, "1e3", True, 100000]


def _people() -> list[dict]:
    people = [{"email": f"p{i}@example.com", "attributes": {"lifetime_value": v}} for i, v in enumerate(VALUES)]
    people.append({"email": "none@example.com", "attributes": {}})
    return people


def test_bad_values_go_low_and_never_fail_the_batch(database_url):
    with registered(HighValue):
        result = run(DOCUMENT, _people(), database_url=database_url)
    # 250, 100 and 100000 are numbers at or above 100; nothing else is, whatever its type
    assert result.ports("split") == {"high": 3, "low": 9}
    assert result.entered("bonus") == 3


def test_another_attribute_and_threshold(database_url):
    document = {**DOCUMENT, "nodes": [dict(n) for n in DOCUMENT["nodes"]]}
    document["nodes"][1] = {**document["nodes"][1], "settings": {"attribute": "orders", "threshold": 2}}
    people = [{"attributes": {"orders": n}} for n in (0, 1, 2, 3, "two")]
    with registered(HighValue):
        result = run(document, people, database_url=database_url)
    assert result.ports("split") == {"high": 2, "low": 3}
