"""What a node card says: each built-in node type's one-line summary, in the marketer's words,
and validation that speaks only when a marketer has something to do, naming nodes by label.

Summaries are asked of the real node types (with the names of stored things lent by
`naming`, as the canvas's validation does), and of the API with real templates, segments
and audiences in the database.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core import registry
from engine.core.graph import with_defaults
from engine.core.validation import errors, validate_document
from engine.core.wording import naming, rules_in_words
from tests.support import doc

NAMES = {("templates", 1): "Welcome", ("segments", 3): "VIPs", ("audiences", 4): "Newsletter",
         ("polls", 5): "NPS", ("providers", 6): "CRM hook", ("nodes", "mail"): "Welcome email",
         ("nodes", "vip"): "VIP check"}


def summary(type_name: str, names: dict | None = None, **settings: Any) -> str | None:
    """The summary a node of this type with these settings shows (defaults filled in, as
    the canvas's validation gives them)."""
    cls = registry.get(type_name)
    assert cls is not None
    with naming(NAMES if names is None else names):
        return cls.summary(with_defaults(cls.schema, settings))


RULES = {"match": "any", "rules": [{"field": "points", "op": "gte", "value": 250},
                                   {"field": "attributes.plan", "op": "in", "value": ["free", "pro"]}]}


@pytest.mark.parametrize(("type_name", "settings", "expected"), [
    ("event_trigger", {"event": "order"}, "order — each time"),
    ("event_trigger", {"event": "order", "frequency": "once"}, "order — once"),
    ("event_trigger", {"event": "order", "frequency": "period", "period": "7d"}, "order — once per week"),
    ("event_trigger", {"event": "order", "frequency": "period", "period": "2d"}, "order — once per 2 days"),
    ("select_segment", {"segment_id": 3}, "Segment: VIPs — at launch"),
    ("select_segment", {"source": "audience", "audience_id": 4, "send_at": "2026-12-24T09:00"},
     "Audience: Newsletter — at 2026-12-24T09:00"),
    ("select_segment", {"source": "all"}, "Everyone — at launch"),
    ("schedule_trigger", {"segment_id": 3, "every": "1d", "start": "2026-12-01T09:00"}, "Segment: VIPs — every day"),
    ("schedule_trigger", {"source": "all", "cron": "0 9 * * 1", "start": "2026-12-01T09:00", "repeat": "once"},
     "Everyone — on cron 0 9 * * 1, each customer once"),
    ("segment_entry", {"segment_id": 3}, "Enters VIPs"),
    ("filter", {"rules": RULES}, "points ≥ 250 or plan is one of free, pro"),
    ("refresh_filter", {"filter_node": "vip"}, "Re-applies VIP check"),
    ("multi_split", {"paths": [{"id": "gold", "name": "Gold", "rules": RULES},
                               {"id": "rest", "rules": {"match": "all", "rules": []}}]},
     "Gold: points ≥ 250 or plan is one of free, pro; rest: everyone"),
    ("ab_test", {}, "2 variants, 1,000 in the test, winner by clicks after 1 day"),
    ("ab_test", {"variants": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "test_size": 300, "metric": "opens",
                 "evaluation_period": "2d"}, "3 variants, 300 in the test, winner by opens after 2 days"),
    ("control_group", {}, "10% held out"),
    ("control_group", {"mode": "count", "count": 250}, "250 customers held out"),
    ("limit", {"max": 1000, "period": "day"}, "At most 1,000 per day"),
    ("limit", {"max": 50}, "At most 50 in total"),
    ("wait", {"amount": 2}, "2 days"),
    ("wait", {"amount": 1, "unit": "hours"}, "1 hour"),
    ("wait_until", {"date": "2026-12-24", "time": "09:00", "timezone": "Europe/Paris"},
     "Until 2026-12-24 at 09:00 (Europe/Paris)"),
    ("wait_for_event", {"event": "order", "where": [{"property": "total", "op": "gt", "value": 50}],
                        "timeout": "3d"}, "order with total > 50, at most 3 days"),
    ("send_email", {"template_id": 1}, "Template: Welcome"),
    ("send_email", {"template_id": 99}, "Saved template"),
    ("send_email", {"content": {"subject": "Your order is on its way to you today", "text": "x"}},
     "“Your order is on its way…”"),
    ("send_sms", {"content": {"body": "See you soon"}}, "“See you soon”"),
    ("send_push", {"content": {"title": "Sale", "body": "Everything must go"}}, "“Sale”"),
    ("send_inapp", {"template_id": 1}, "Template: Welcome"),
    ("webapi_call", {"provider_id": 6, "content": {"body": {}}}, "Calls CRM hook"),
    ("notify_manager", {"manager_email": "boss@example.com", "content": {"subject": "VIP", "text": "x"}},
     "To boss@example.com"),
    ("check_email_status", {"email_node": "mail"}, "Email: Welcome email"),
    ("show_popup", {"content": {"title": "Ten percent off"}}, "“Ten percent off” on page_view"),
    ("limit_poll", {"poll_id": 5, "max_completions": 100, "per": "day"}, "Poll: NPS — at most 100 completions per day"),
    ("add_to_audience", {"audience_id": 4}, "Audience: Newsletter"),
    ("exclude_from_audience", {"audience_id": 4}, "Audience: Newsletter"),
    ("award_points", {"points": 10}, "+10 points"),
    ("award_points", {"points": -1}, "−1 point"),
    ("accrue_bonus_points", {"content": {"amount": 100, "expires_in": "365d"}}, "+100 points, expire after 1 year"),
    ("accrue_bonus_points", {"content": {"amount": "{{ event.properties.total }}"}},
     "Points: {{ event.properties.total }}"),
])
def test_each_built_in_node_says_what_it_does(type_name, settings, expected):
    assert summary(type_name, **settings) == expected


def test_every_built_in_type_but_merge_has_a_summary():
    """A new built-in type without a summary shows a bare card: this says which."""
    silent = {cls.type for cls in registry.all_types()
              if cls.__module__.startswith("nodes.") and type(cls).__dict__.get("summary") is None
              and cls.summary.__func__ is registry.NodeType.summary.__func__}  # type: ignore[attr-defined]
    assert silent == {"merge"}


def test_without_the_names_a_summary_never_shows_an_id():
    assert summary("send_email", names={}, template_id=1) == "Saved template"
    assert summary("select_segment", names={}, segment_id=3) == "A chosen segment — at launch"
    assert summary("check_email_status", names={}, email_node="n_fpm42w4aanqb") == "An earlier email"
    assert summary("add_to_audience", names={}, audience_id=4) == "A chosen audience"


def test_ab_test_without_a_metric_is_judged_by_the_goal_when_there_is_one():
    assert summary("ab_test", names={("campaign", "goal"): "purchase"}).endswith("winner by conversions after 1 day")


def test_rules_in_words_reads_events_membership_and_negation():
    rules = {"match": "all", "rules": [
        {"event": "purchase", "count": {"op": "gte", "value": 2}, "within": "30d",
         "where": [{"property": "amount", "op": "gt", "value": 50}]},
        {"event": "login", "count": {"op": "eq", "value": 0}},
        {"segment": 3, "negate": True},
        {"not": {"match": "any", "rules": [{"field": "email", "op": "contains", "value": "@test"},
                                           {"field": "phone", "op": "not_exists"}]}}]}
    with naming(NAMES):
        text = rules_in_words(rules)
    assert text == ("did purchase at least 2 times with amount > 50 in the last 30 days and never did login "
                    "and not in segment VIPs and not (email contains @test or phone is not set)")
    assert rules_in_words({"match": "all", "rules": []}) == "everyone"
    assert rules_in_words("garbage") == "a condition"


# --------------------------------------------------------------------------- validation, quietly


def journey() -> dict[str, Any]:
    """Order placed → welcome email → wait 2 days → did they open it? → a reminder to those
    who did not: complete, with `failed`, `skipped` and the other statuses left as ends."""
    document = doc([("start", "event_trigger", {"event": "order"}),
                    ("mail", "send_email", {"content": {"subject": "Thanks", "text": "Thanks!"}}),
                    ("pause", "wait", {"amount": 2}),
                    ("status", "check_email_status", {"email_node": "mail"}),
                    ("again", "send_email", {"content": {"subject": "Did you see?", "text": "Look"}})],
                   [("start", "out", "mail"), ("mail", "sent", "pause"), ("pause", "out", "status"),
                    ("status", "delivered_not_opened", "again")])
    document["nodes"][1]["label"] = "Welcome email"
    return document


def test_a_complete_normal_journey_has_no_warning():
    assert validate_document(journey()) == []


def test_a_step_leading_nowhere_is_a_warning_naming_it_by_label():
    document = journey()
    document["edges"] = [e for e in document["edges"] if e["source"] != "mail"]
    document["edges"].append({"id": "x", "source": "mail", "source_port": "failed", "target": "pause"})
    assert validate_document(document) == []  # failed → wait: sent and skipped are ends, no warning
    document["nodes"] = document["nodes"][:3]  # the journey now ends with a wait: pointless
    document["nodes"][2]["label"] = "Give them time"
    document["edges"] = [e for e in document["edges"] if e["source"] in ("start", "mail")]
    (warning,) = validate_document(document)
    assert (warning.code, warning.severity, warning.node_id) == ("unconnected_port", "warning", "pause")
    assert warning.message == ("'Give them time': nothing is connected to its 'out' port, so customers "
                               "leaving by it end their journey there.")


def test_an_ab_test_left_on_its_defaults_needs_no_goal():
    document = journey()
    document["nodes"].append({"id": "ab", "type": "ab_test", "settings": {}, "position": {"x": 0, "y": 0}})
    document["edges"] = [e for e in document["edges"] if e["source"] != "start"]
    document["edges"] += [{"id": "a1", "source": "start", "source_port": "out", "target": "ab"},
                          {"id": "a2", "source": "ab", "source_port": "a", "target": "mail"},
                          {"id": "a3", "source": "ab", "source_port": "b", "target": "mail"}]
    assert validate_document(document) == []
    document["nodes"][-1]["settings"] = {"metric": "conversions"}
    document["nodes"][-1]["label"] = "Subject test"
    (problem,) = errors(validate_document(document))
    assert problem.code == "no_goal" and problem.pointer.endswith("/settings/metric")
    assert problem.message.startswith("'Subject test': the winner is chosen by conversions")
    assert "choose opens or clicks" in problem.message


def test_a_reference_to_a_node_left_behind_says_so_without_its_id():
    document = journey()
    document["nodes"][3]["settings"]["email_node"] = "n_fpm42w4aanqb"  # pasted without its email
    (problem,) = errors(validate_document(document))
    assert problem.node_id == "status" and problem.pointer.endswith("/settings/email_node")
    assert problem.message == ("'Check email status': the email it checks is not on this canvas; pick another.")


def test_no_problem_message_shows_an_internal_id():
    document = journey()
    for node in document["nodes"]:
        node["id"] = f"n_{node['id']}xq9"
    for e in document["edges"]:
        e["source"], e["target"] = f"n_{e['source']}xq9", f"n_{e['target']}xq9"
    document["nodes"][3]["settings"]["email_node"] = "n_gone"
    document["nodes"][2]["settings"] = {"amount": -1}
    document["nodes"].append({"id": "n_lostxq9", "type": "award_points", "settings": {"points": 5},
                              "position": {"x": 0, "y": 0}})
    document["edges"].append({"id": "e_loop", "source": "n_againxq9", "source_port": "sent", "target": "n_mailxq9"})
    problems = validate_document(document)
    assert {p.code for p in problems} >= {"unknown_email_node", "invalid_settings", "unreachable"}
    assert not [p.message for p in problems if "xq9" in p.message or "n_gone" in p.message]


# --------------------------------------------------------------------------- over HTTP


def test_validate_answers_each_node_summary_with_the_names_of_stored_things(api):
    template = api.post("/api/templates", json={"channel": "email", "name": "Spring sale", "content": {
        "subject": "Hi", "text": "Hello"}}).get_json()
    segment = api.post("/api/segments", json={"name": "Big spenders", "rules": {"match": "all", "rules": [
        {"field": "points", "op": "gte", "value": 10}]}}).get_json()
    document = doc([("start", "select_segment", {"segment_id": segment["id"]}),
                    ("split", "ab_test", {"variants": [{"id": "a", "name": "Short subject"},
                                                       {"id": "b", "name": "Long subject"}], "metric": "clicks"}),
                    ("mail", "send_email", {"template_id": template["id"]}),
                    ("fans", "filter", {"rules": {"match": "all", "rules": [{"segment": segment["id"]}]}}),
                    ("broken", "wait", {"amount": -1})],
                   [("start", "out", "split"), ("split", "a", "mail"), ("split", "b", "mail"),
                    ("mail", "sent", "fans"), ("fans", "yes", "broken")])
    answer = api.post("/api/campaigns/validate", json=document).get_json()
    assert answer["summaries"] == {
        "start": "Segment: Big spenders — at launch",
        "split": "2 variants, 1,000 in the test, winner by clicks after 1 day",
        "mail": "Template: Spring sale",
        "fans": "in segment Big spenders",
    }  # the wait's settings are invalid: no summary until they are fixed
    assert answer["port_labels"] == {"split": {"a": "Short subject", "b": "Long subject"}}
    assert [p["code"] for p in answer["problems"]] == ["invalid_settings"]


def test_the_report_names_the_template_a_send_node_uses(api):
    template = api.post("/api/templates", json={"channel": "email", "name": "Autumn news", "content": {
        "subject": "Hi", "text": "Hello"}}).get_json()
    document = doc([("start", "event_trigger", {"event": "signup"}),
                    ("mail", "send_email", {"template_id": template["id"]})], [("start", "out", "mail")])
    created = api.post("/api/campaigns", json=document).get_json()
    report = api.get(f"/api/campaigns/{created['id']}/report").get_json()
    assert {n["id"]: n["summary"] for n in report["nodes"]} == {"start": "signup — each time",
                                                                "mail": "Template: Autumn news"}
