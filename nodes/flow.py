"""Flow nodes: route, split, hold back and delay customers, a batch at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, case, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from engine.sdk import (
    DURATION,
    Batch,
    Experiment,
    NodeType,
    Problem,
    Result,
    Variant,
    duration_parts,
    id_chunks,
    parse_duration,
    to_utc_naive,
)
from engine.sdk.conditions import (
    RULES_SCHEMA,
    rule_problems,
    rules_property,
    rules_schema,
    where,
)
from engine.sdk.data import AbAssignment, Event, NodeState, Profile
from engine.sdk.events import performed
from engine.sdk.wording import (
    amount_in_words,
    count_in_words,
    duration_in_words,
    rules_in_words,
    stored_name,
    where_in_words,
)


def _filter(batch: Batch, rules: Mapping[str, Any]) -> Result:
    condition = where(batch.session, dict(rules), batch.now)
    yes = batch.matching(select(Profile.id).where(condition), Profile.id)
    return {"yes": yes, "no": batch.without(yes)}


class Filter(NodeType):
    """Splits customers by rules over profile fields, attributes, points, membership and past
    events; evaluated by one SQL statement for the whole batch."""

    type = "filter"
    label = "Filter customers"
    category = "flow"
    ports = ("yes", "no")
    end_ports = frozenset({"no"})
    schema = rules_schema("Customers who match")

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        return rule_problems(node_id, settings["rules"], "/settings/rules")

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """The rules in words: who goes by `yes`."""
        return rules_in_words(settings.get("rules", {}))

    def process(self, batch: Batch) -> Result:
        return _filter(batch, self.settings["rules"])


class RefreshFilter(NodeType):
    """Re-applies an earlier filter node's rules, by reference: edit the filter, both change."""

    type = "refresh_filter"
    label = "Refresh filter"
    category = "flow"
    ports = ("yes", "no")
    end_ports = frozenset({"no"})
    schema = {"type": "object", "properties": {"filter_node": {"type": "string", "minLength": 1,
                                                               "title": "Filter node to re-apply"}},
              "required": ["filter_node"]}

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        target = next((n for n in document.get("nodes", []) if n.get("id") == settings["filter_node"]), None)
        if target is None or target.get("type") != Filter.type:
            return [Problem(code="unknown_filter", node_id=node_id, pointer="/settings/filter_node",
                            message=f"Node {node_id!r}: the filter it re-applies is not on this canvas; "
                                    "pick another.")]
        return []

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """Which filter it re-applies, by that node's label."""
        name = stored_name("nodes", settings.get("filter_node"))
        return f"Re-applies {name}" if name else "Re-applies an earlier filter"

    def process(self, batch: Batch) -> Result:
        target = next(n for n in batch.ctx.document["nodes"] if n["id"] == self.settings["filter_node"])
        return _filter(batch, target["settings"]["rules"])


#: the events that count as an open or a click of a message (written by delivery webhooks)
METRIC_EVENTS = {"opens": ("email.open", "push.open"), "clicks": ("email.click", "push.click")}


class ABTest(NodeType):
    """Splits the first N customers evenly across variants; after the evaluation period the
    variant with the best open, click or conversion rate wins and everyone later goes to it.
    Customers arriving between the test and the decision wait here for it."""

    type = "ab_test"
    label = "A/B test"
    capabilities = frozenset({"experiment"})
    category = "flow"
    ports = ()
    schema = {
        "type": "object",
        "properties": {
            "variants": {
                "type": "array", "minItems": 2, "maxItems": 10, "title": "Variants",
                "items": {"type": "object", "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                    "name": {"type": "string", "maxLength": 100}}, "required": ["id"]},
                "default": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
            },
            "test_size": {"type": "integer", "minimum": 2, "title": "Customers in the test", "default": 1000},
            "metric": {"type": "string", "enum": ["opens", "clicks", "conversions"], "title": "Winner by",
                       "description": "when empty: conversions if the campaign has a goal, else clicks"},
            "evaluation_period": {**DURATION, "title": "Evaluation period", "default": "1d"},
        },
        "required": ["variants", "test_size"],
    }

    @classmethod
    def ports_for(cls, settings: Mapping[str, Any]) -> list[str]:
        return [v["id"] for v in settings.get("variants", [])]

    @classmethod
    def port_labels(cls, settings: Mapping[str, Any]) -> Mapping[str, str]:
        """Each variant's port shows the variant's name."""
        return {v["id"]: v["name"] for v in settings.get("variants", []) if v.get("name")}

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        ids = cls.ports_for(settings)
        problems = []
        if len(set(ids)) != len(ids):
            problems.append(Problem(code="duplicate_variant", node_id=node_id, pointer="/settings/variants",
                                    message=f"Node {node_id!r}: variant ids must be different."))
        if settings.get("metric") == "conversions" and not document.get("goal"):
            problems.append(Problem(code="no_goal", node_id=node_id, pointer="/settings/metric",
                                    message=f"Node {node_id!r}: the winner is chosen by conversions, so the "
                                            "campaign needs a goal: set one in the campaign's settings, or "
                                            "choose opens or clicks."))
        return problems

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'2 variants, 1,000 in the test, winner by clicks after 1 day'."""
        metric = settings.get("metric") or ("conversions" if stored_name("campaign", "goal") else "clicks")
        variants = len(settings.get("variants", []))
        return (f"{variants} variants, {count_in_words(settings.get('test_size', 0))} in the test, "
                f"winner by {metric} after {duration_in_words(settings.get('evaluation_period', '1d'))}")

    @classmethod
    def experiment(cls, session: Session, campaign_id: int, node_id: str, settings: Mapping[str, Any],
                   document: Mapping[str, Any], now: datetime) -> Experiment:
        """Each variant's test group score on the node's metric: frozen at the decision once
        made, live until then."""
        state = session.get(NodeState, (campaign_id, node_id))
        data = dict(state.data) if state else {}
        names = {v["id"]: v.get("name") or v["id"] for v in settings.get("variants", [])}
        metric = data.get("metric") or effective_metric(settings, document)
        winner = data.get("winner")
        scores = data.get("scores") if winner else None
        if scores is None:
            scores = score_variants(session, campaign_id, node_id, data.get("round", 1), list(names),
                                    metric_events(metric, document), now)
        variants = [Variant(v, name, int(scores.get(v, {}).get("size", 0)), int(scores.get(v, {}).get("hits", 0)))
                    for v, name in names.items()]
        return Experiment(metric=metric, variants=variants, winner=winner,
                          state="decided" if winner else ("evaluating" if data.get("completed_at") else "testing"),
                          decided_at=data.get("decided_at"))

    def process(self, batch: Batch) -> Result:
        variants = self.ports_for(self.settings)
        state = batch.state()
        data = {"round": 1, "assigned": 0, "completed_at": None, "winner": None, **state.data}
        routed: dict[str, list[int]] = {v: [] for v in variants}
        test_count = 0
        if data["winner"] is None:
            test_count = min(max(self.settings["test_size"] - data["assigned"], 0), len(batch))
            rows = []
            for i in range(test_count):
                variant = variants[(data["assigned"] + i) % len(variants)]
                routed[variant].append(i)
                rows.append({"campaign_id": batch.ctx.campaign_id, "node_id": self.id, "variant": variant,
                             "profile_id": batch.profile_ids[i], "round": data["round"], "assigned_at": batch.now})
            if rows:
                batch.session.execute(insert(AbAssignment), rows)
            data["assigned"] += test_count
            if data["assigned"] >= self.settings["test_size"] and data["completed_at"] is None:
                data["completed_at"] = batch.now.isoformat()
        rest = batch.take(range(test_count, len(batch)))
        if len(rest) and data["winner"] is None:
            decide_at = datetime.fromisoformat(data["completed_at"]) + parse_duration(
                self.settings["evaluation_period"])
            if batch.now < decide_at:
                batch.hold(rest, decide_at)
                rest = rest.empty()
            else:
                data.update(self._decide(batch, data["round"], variants))
        if data["winner"] is not None and len(rest):
            routed[data["winner"]].extend(range(test_count, len(batch)))
        state.data = data
        return {v: batch.take(idx) for v, idx in routed.items()}

    def _decide(self, batch: Batch, round_: int, variants: list[str]) -> dict[str, Any]:
        """Score each variant on its test group; ties go to the earlier variant."""
        metric = effective_metric(self.settings, batch.ctx.document)
        scores = score_variants(batch.session, batch.ctx.campaign_id, self.id, round_, variants,
                                metric_events(metric, batch.ctx.document), batch.now)
        winner = max(variants, key=lambda v: (scores[v]["rate"], -variants.index(v)))
        return {"winner": winner, "scores": scores, "decided_at": batch.now.isoformat(), "metric": metric}


def effective_metric(settings: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    """The metric chosen, else conversions when the campaign has a goal, else clicks: a test
    left on its defaults never needs a goal it does not have (and one saved before, which
    had a goal to be valid, keeps conversions)."""
    return settings.get("metric") or ("conversions" if document.get("goal") else "clicks")


def metric_events(metric: str, document: Mapping[str, Any]) -> tuple[str, ...]:
    """The events that count as a hit for an A/B metric (conversions: the campaign goal)."""
    return METRIC_EVENTS.get(metric) or ((document.get("goal") or {}).get("event", ""),)


def score_variants(session: Session, campaign_id: int, node_id: str, round_: int, variants: Sequence[str],
                   names: Sequence[str], until: datetime) -> dict[str, dict[str, Any]]:
    """{variant: {"size", "hits", "rate"}}: how many of a test round's customers did one of
    `names` after being assigned, up to `until`. The node decides on it; reports show it."""
    a = AbAssignment
    keys = and_(a.campaign_id == campaign_id, a.node_id == node_id, a.round == round_)
    sizes = dict(session.execute(select(a.variant, func.count()).where(keys).group_by(a.variant)).all())
    acted = exists().where(Event.profile_id == a.profile_id, Event.name.in_(names),
                           Event.occurred_at >= a.assigned_at, Event.occurred_at <= until)
    hits = dict(session.execute(
        select(a.variant, func.count(func.distinct(a.profile_id))).where(keys, acted).group_by(a.variant)
    ).all())
    return {v: {"size": sizes.get(v, 0), "hits": hits.get(v, 0),
                "rate": hits.get(v, 0) / sizes[v] if sizes.get(v) else 0.0} for v in variants}


def restart_ab_test(session: Session, campaign_id: int, node_id: str) -> None:
    """"Restart test": forget the winner and split the next N customers again."""
    state = session.get(NodeState, (campaign_id, node_id))
    if state is not None:
        data = dict(state.data)
        state.data = {"round": data.get("round", 1) + 1, "assigned": 0, "completed_at": None, "winner": None,
                      "previous": {k: data.get(k) for k in ("winner", "scores", "decided_at")}}


def _spread(batch: Batch, salt: str) -> list[int]:
    """Batch positions in a stable pseudo-random order (same customer, same place)."""
    def key(i: int) -> bytes:
        return hashlib.blake2b(f"{salt}:{batch.profile_ids[i]}".encode(), digest_size=8).digest()

    return sorted(range(len(batch)), key=key)


class ControlGroup(NodeType):
    """Holds out a share of customers (or a fixed number) so the campaign's uplift can be
    measured against them. The share is kept exact over time, not just on average."""

    type = "control_group"
    capabilities = frozenset({"holdout"})
    label = "Control group"
    category = "flow"
    ports = ("out", "control")
    end_ports = frozenset({"control"})
    schema = {
        "type": "object",
        "properties": {
            "mode": {"type": "string", "enum": ["percent", "count"], "default": "percent", "title": "Hold out"},
            "percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 10, "title": "Percent"},
            "count": {"type": "integer", "minimum": 0, "default": 100, "title": "Number of customers"},
        },
    }

    @classmethod
    def holdout_ports(cls, settings: Mapping[str, Any]) -> tuple[str, str]:
        return ("control", "out")

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'10% held out' or '100 customers held out'."""
        if settings.get("mode") == "count":
            return f"{count_in_words(settings.get('count', 100))} customers held out"
        return f"{count_in_words(settings.get('percent', 10))}% held out"

    def process(self, batch: Batch) -> Result:
        state = batch.state()
        data = {"seen": 0, "held": 0, **state.data}
        seen = data["seen"] + len(batch)
        if self.settings["mode"] == "percent":
            target = int(seen * self.settings["percent"] / 100 + 0.5)
        else:
            target = self.settings["count"]
        take = min(max(target - data["held"], 0), len(batch))
        order = _spread(batch, f"{batch.ctx.campaign_id}:{self.id}")
        control = sorted(order[:take])
        state.data = {"seen": seen, "held": data["held"] + take}
        held = batch.take(control)
        return {"control": held, "out": batch.without(held)}


_PERIODS = {"campaign": None, "day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}


class LimitParticipants(NodeType):
    """Lets at most N customers through per campaign, day, week or month (account time zone);
    the others leave by `over_limit`."""

    type = "limit"
    label = "Limit number of participants"
    category = "flow"
    ports = ("out", "over_limit")
    end_ports = frozenset({"over_limit"})
    schema = {
        "type": "object",
        "properties": {
            "max": {"type": "integer", "minimum": 1, "maximum": 2**62, "title": "At most"},
            "period": {"type": "string", "enum": list(_PERIODS), "default": "campaign", "title": "Per"},
        },
        "required": ["max"],
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'At most 1,000 per day'."""
        period = settings.get("period", "campaign")
        per = "in total" if period == "campaign" else f"per {period}"
        return f"At most {count_in_words(settings.get('max', 0))} {per}"

    def process(self, batch: Batch) -> Result:
        fmt = _PERIODS[self.settings["period"]]
        local = batch.now.replace(tzinfo=ZoneInfo("UTC")).astimezone(batch.ctx.account_tz)
        key = local.strftime(fmt) if fmt else "all"
        state = batch.state()
        count = state.data.get("count", 0) if state.data.get("period") == key else 0
        allowed = min(max(self.settings["max"] - count, 0), len(batch))
        state.data = {"period": key, "count": count + allowed}
        return {"out": batch.take(range(allowed)), "over_limit": batch.take(range(allowed, len(batch)))}


_UNITS = {"minutes": "m", "hours": "h", "days": "d", "weeks": "w"}


class Wait(NodeType):
    """Holds each customer for a fixed time from when they reached this node."""

    type = "wait"
    label = "Wait"
    category = "flow"
    delay = True
    schema = {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "exclusiveMinimum": 0, "title": "Wait for"},
            "unit": {"type": "string", "enum": list(_UNITS), "default": "days", "title": "Unit"},
        },
        "required": ["amount"],
        **duration_parts("amount", "unit"),
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'2 days'."""
        return amount_in_words(settings.get("amount", 0), settings.get("unit", "days"))

    def process(self, batch: Batch) -> Result:
        delta = parse_duration(f"{self.settings['amount']}{_UNITS[self.settings['unit']]}")
        return _release_at(batch, [entered + delta for entered in batch.node_entered_at])


class WaitUntilDate(NodeType):
    """Holds customers until a date (00:00 in the account time zone unless a time is given)."""

    type = "wait_until"
    label = "Wait until date"
    category = "flow"
    delay = True
    schema = {
        "type": "object",
        "properties": {
            "date": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$", "title": "Date"},
            "time": {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$", "default": "00:00", "title": "Time"},
            "timezone": {"type": "string", "title": "Time zone (account time zone when empty)"},
        },
        "required": ["date"],
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'Until 2026-12-24 at 09:00' (and the time zone when the node has its own)."""
        text = f"Until {settings.get('date')}"
        if settings.get("time", "00:00") != "00:00":
            text += f" at {settings['time']}"
        return text + (f" ({settings['timezone']})" if settings.get("timezone") else "")

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        name = settings.get("timezone")
        try:
            if name:
                ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return [Problem(code="unknown_timezone", node_id=node_id, pointer="/settings/timezone",
                            message=f"Node {node_id!r}: {name!r} is not a time zone (e.g. Europe/Paris).")]
        return []

    def process(self, batch: Batch) -> Result:
        tz = ZoneInfo(self.settings["timezone"]) if self.settings.get("timezone") else batch.ctx.account_tz
        day = datetime.fromisoformat(self.settings["date"]).date()
        at = to_utc_naive(datetime.combine(day, time.fromisoformat(self.settings["time"]), tzinfo=tz))
        return _release_at(batch, [at] * len(batch))


def _release_at(batch: Batch, due: list[datetime]) -> Result:
    ready = [i for i, t in enumerate(due) if t <= batch.now]
    later = [i for i, t in enumerate(due) if t > batch.now]
    if later:
        batch.hold(batch.take(later), [due[i] for i in later])
    return {"out": batch.take(ready)}


#: the rule language's event property condition, as a settings schema item
PROPERTY_CONDITION = {**RULES_SCHEMA["$defs"]["rules_property"], "title": "Property condition"}


class WaitForEvent(NodeType):
    """Holds each customer until they perform an event (optionally with matching properties)
    after reaching this node, or until the timeout passes: they leave by `event` or by
    `timeout`. Event ingestion makes the waiting customers due at once (engine/core/waiting.py);
    the decision itself reads the stored events between arrival and the timeout, so a lost
    or late wakeup or a replay gives the same answer."""

    type = "wait_for_event"
    label = "Wait for event"
    category = "flow"
    delay = True
    ports = ("event", "timeout")
    end_ports = frozenset({"timeout"})
    schema = {
        "type": "object",
        "properties": {
            "event": {"type": "string", "minLength": 1, "maxLength": 128, "title": "Event name"},
            "where": {"type": "array", "items": PROPERTY_CONDITION, "default": [],
                      "title": "Only when the event's properties match",
                      "description": 'e.g. {"property": "total", "op": "gt", "value": 50}; all must match'},
            "timeout": {**DURATION, "default": "1d", "title": "Give up after"},
        },
        "required": ["event"],
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'order with total > 50, at most 1 day'."""
        return (f"{settings.get('event')}{where_in_words(settings.get('where'))}, "
                f"at most {duration_in_words(settings.get('timeout', '1d'))}")

    @classmethod
    def waits_for(cls, settings: Mapping[str, Any]) -> set[str]:
        """The events whose ingestion wakes this node's customers (engine/core/waiting.py)."""
        return {settings["event"]} if isinstance(settings.get("event"), str) else set()

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        rule = {"event": settings["event"], "where": settings["where"]}  # checked as the rule language's own
        problems = [replace(p, pointer=p.pointer.replace("/settings/rules/0", "/settings", 1))
                    for p in rule_problems(node_id, {"rules": [rule]}, "/settings")]
        return problems + _duration_problems(node_id, settings["timeout"], "/settings/timeout")

    def process(self, batch: Batch) -> Result:
        deadlines = [entered + parse_duration(self.settings["timeout"]) for entered in batch.node_entered_at]
        ends = [min(deadline, batch.now) for deadline in deadlines]
        met = set(performed(batch, self.settings["event"], self.settings["where"], ends))
        rest = [i for i in range(len(batch)) if i not in met]
        over = [i for i in rest if deadlines[i] <= batch.now]
        later = [i for i in rest if deadlines[i] > batch.now]
        if later:
            batch.hold(batch.take(later), [deadlines[i] for i in later])
        return {"event": batch.take(sorted(met)), "timeout": batch.take(over)}


def _duration_problems(node_id: str, text: str, pointer: str) -> list[Problem]:
    """A duration setting that is zero (the schema has bounded its length already)."""
    if parse_duration(text) > timedelta(0):
        return []
    return [Problem(code="invalid_duration", node_id=node_id, pointer=pointer,
                    message=f"Node {node_id!r}: {text!r} must be longer than 0 (e.g. 30m, 2h, 7d, 1w).")]


#: the port of customers no path of a multi-way split takes
ELSE = "else"
PORT_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", "title": "Port id"}


class MultiSplit(NodeType):
    """Routes each customer by the first path whose rules they match (paths are tried in
    order), and the others by `else`. One statement decides for the whole batch: a CASE
    over every path's rules, so the first match wins in SQL."""

    type = "multi_split"
    label = "Multi-way split"
    category = "flow"
    ports = ()
    end_ports = frozenset({ELSE})
    schema = {
        "type": "object",
        "$defs": RULES_SCHEMA.get("$defs", {}),
        "properties": {
            "paths": {
                "type": "array", "minItems": 1, "maxItems": 20, "title": "Paths (the first that matches wins)",
                "items": {"type": "object", "title": "Path", "properties": {
                    "id": PORT_ID,
                    "name": {"type": "string", "maxLength": 100, "title": "Name"},
                    "rules": rules_property("Customers who match")}, "required": ["id", "rules"]},
                "default": [{"id": "path_1", "name": "Path 1", "rules": {"match": "all", "rules": []}}],
            },
        },
        "required": ["paths"],
    }

    @classmethod
    def ports_for(cls, settings: Mapping[str, Any]) -> list[str]:
        return list(dict.fromkeys([*(p["id"] for p in settings.get("paths", [])), ELSE]))

    @classmethod
    def port_labels(cls, settings: Mapping[str, Any]) -> Mapping[str, str]:
        """Each path's port shows the path's name."""
        return {p["id"]: p["name"] for p in settings.get("paths", []) if p.get("name")}

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """Each path by its name and rules, in order: 'Gold: points ≥ 250; Silver: ...'."""
        return "; ".join(f"{p.get('name') or p.get('id')}: {rules_in_words(p.get('rules', {}))}"
                         for p in settings.get("paths", []))

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        problems, seen = [], set()
        for i, path in enumerate(settings["paths"]):
            if path["id"] == ELSE or path["id"] in seen:
                why = "is the port of customers no path takes" if path["id"] == ELSE else "is used by an earlier path"
                problems.append(Problem(code="duplicate_path", node_id=node_id, pointer=f"/settings/paths/{i}/id",
                                        message=f"Node {node_id!r}: path id {path['id']!r} {why}; "
                                                "each path needs its own id."))
            seen.add(path["id"])
            problems += rule_problems(node_id, path["rules"], f"/settings/paths/{i}/rules")
        return problems

    def process(self, batch: Batch) -> Result:
        paths = [p["id"] for p in self.settings["paths"]]
        first = _first_match(batch, [p["rules"] for p in self.settings["paths"]])
        routed: dict[str, list[int]] = {port: [] for port in [*paths, ELSE]}
        for i, profile_id in enumerate(batch.profile_ids):
            k = first.get(profile_id, -1)
            routed[paths[k] if k >= 0 else ELSE].append(i)
        return {port: batch.take(members) for port, members in routed.items()}


def _first_match(batch: Batch, rule_sets: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """profile id -> the index of the first rule set the customer matches (-1: none)."""
    if not len(batch):
        return {}
    whens = [(where(batch.session, dict(rules), batch.now), k) for k, rules in enumerate(rule_sets)]
    query = select(Profile.id, case(*whens, else_=literal(-1)))
    found: dict[int, int] = {}
    for chosen in id_chunks(batch.session, Profile.id, list(dict.fromkeys(batch.profile_ids))):
        found.update(batch.session.execute(query.where(chosen)).all())
    return found


class Merge(NodeType):
    """Joins branches into one path (any node accepts several incoming edges; this one makes
    the join visible on the canvas)."""

    type = "merge"
    label = "Merge branches"
    category = "flow"

    def process(self, batch: Batch) -> Result:
        return {"out": batch}


__all__ = ["ABTest", "ControlGroup", "Filter", "LimitParticipants", "Merge", "MultiSplit", "RefreshFilter", "Wait",
           "WaitForEvent", "WaitUntilDate", "restart_ab_test"]
