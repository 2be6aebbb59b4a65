"""Engagement nodes: a popup on the customer's next visit, and a cap on who is asked a poll.

- `show_popup` writes one popup per customer, in the batch's transaction, for the site to
  show on the customer's next matching action (engine/engagement/popups.py hands it out once).
- `limit_poll` asks customers a poll until enough of them completed it (in total, or per
  day, week or month in the account time zone), never more at once than `max_open`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import distinct, exists, func, select

from engine.sdk import (
    DURATION,
    Batch,
    NodeType,
    Problem,
    Result,
    parse_duration,
    ref,
)
from engine.sdk.data import JourneyStep, Poll, PollResponse, Popup, Profile, upsert
from engine.sdk.engagement import PERIODS, count_responses, new_token, period_start
from engine.sdk.messaging import load_contexts, renderer_for
from engine.sdk.wording import count_in_words, quoted, stored_name
from nodes.messaging import _content_problems

_URL = {"type": "string", "maxLength": 2000, "pattern": r"^https?://\S+$"}
_BUTTON = {"type": "object", "additionalProperties": False, "required": ["id", "label"], "properties": {
    "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", "title": "Id (reported on click)"},
    "label": {"type": "string", "minLength": 1, "maxLength": 100, "title": "Label"},
    "url": {**_URL, "title": "Opens (http or https URL; closes the popup when empty)"}}}


class ShowPopup(NodeType):
    """Creates a popup for each customer, shown once on their next `action` on the site
    (e.g. page_view) while it lasts (`lifetime`). With "only customers who allow app
    communication" (the default), customers who opted out of app messages (`push_opt_out`)
    leave by `skipped` and get none. Consent is the test, not a push token: a popup shows
    in the page the customer has open, whether or not they installed the app.

    The customer leaves by `out` as soon as the popup exists: whether and when it is shown
    is the site's business, reported back as `popup.view` / `popup.click` events."""

    type = "show_popup"
    label = "Show popup"
    category = "messaging"
    template_channel = "push"  # merge tags and preview over the title and text
    ports = ("out", "skipped")
    end_ports = frozenset(ports)
    schema = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^\S(.*\S)?$",
                       "default": "page_view", "title": "Shown on the site action"},
            "content": {"type": "object", "additionalProperties": False, "title": "Content", "properties": {
                "title": {"type": "string", "maxLength": 200, "title": "Title"},
                "body": {"type": "string", "maxLength": 4000, "title": "Text"},
                "image": {**_URL, "title": "Image URL"}},
                "anyOf": [{"required": ["title"]}, {"required": ["body"]}]},
            "buttons": {"type": "array", "maxItems": 5, "items": _BUTTON, "default": [], "title": "Buttons"},
            "lifetime": {**DURATION, "default": "3d", "title": "Shown within (then it expires)"},
            "app_permission_only": {"type": "boolean", "default": True,
                                    "title": "Only customers who allow app communication"},
        },
        "required": ["action", "content"],
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'“Title” on page_view'."""
        content = settings.get("content") or {}
        text = content.get("title") or content.get("body")
        shown = quoted(text) if text else "A popup"
        return f"{shown} on {settings.get('action', 'page_view')}"

    @classmethod
    def check(cls, node_id: str, settings: Mapping[str, Any], document: Mapping[str, Any]) -> list[Problem]:
        ids = [b["id"] for b in settings.get("buttons", [])]
        problems = [Problem(code="duplicate_button", node_id=node_id, pointer=f"/settings/buttons/{i}/id",
                            message=f"Node {node_id!r}: button id {b!r} is used twice.")
                    for i, b in enumerate(ids) if ids.index(b) != i]
        return problems + _content_problems(node_id, settings, "push")

    def process(self, batch: Batch) -> Result:
        allowed = batch
        if self.settings["app_permission_only"]:
            allowed = batch.matching(select(Profile.id).where(Profile.push_opt_out.is_(False)), Profile.id)
        self._create(allowed)
        return {"out": allowed, "skipped": batch.without(allowed)}

    def _create(self, batch: Batch) -> None:
        """One popup per (enrollment, node): a journey that comes back here gets no second."""
        if not len(batch):
            return
        renderer = renderer_for(batch.session, self.settings)
        contexts = load_contexts(batch.session, batch.enrollment_ids)
        expires_at = batch.now + parse_duration(self.settings["lifetime"])
        rows = []
        for eid, pid in zip(batch.enrollment_ids, batch.profile_ids, strict=True):
            shown = renderer.render(contexts[eid])
            rows.append({"profile_id": pid, "campaign_id": batch.ctx.campaign_id, "node_id": self.id,
                         "enrollment_id": eid, "action": self.settings["action"], "title": shown.get("title", ""),
                         "body": shown.get("body", ""), "image": shown.get("image", ""),
                         "buttons": self.settings["buttons"], "token": new_token(), "created_at": batch.now,
                         "expires_at": expires_at})
        batch.session.execute(upsert(batch.session, Popup).on_conflict_do_nothing(), rows)


#: how often customers waiting for a free place to be asked are looked at again
RECHECK = timedelta(minutes=10)


class LimitPoll(NodeType):
    """Caps how many customers complete a poll: customers are sent to `ask` (to a node that
    asks them) while the poll has fewer than `max_completions` completed responses in the
    period (in total, or this day, week or month in the account time zone) and fewer than
    `max_open` customers asked here have not answered yet. Once the period's completions
    reach the cap, everyone else leaves by `limit_reached`; while the poll is open but the
    asked are still answering, the others wait here (looked at every 10 minutes).

    An asked customer who has not answered within `open_for` stops holding a place. Counts
    come from the database (poll responses, and the journey steps of this node's `ask`
    port), so they are exact across workers; the node's state row serialises them."""

    type = "limit_poll"
    label = "Limit poll"
    category = "flow"
    ports = ("ask", "limit_reached")
    end_ports = frozenset({"limit_reached"})
    schema = {
        "type": "object",
        "properties": {
            "poll_id": ref("polls", "Poll"),
            "max_completions": {"type": "integer", "minimum": 1, "maximum": 2**62, "title": "Completions at most"},
            "per": {"type": "string", "enum": list(PERIODS), "default": "total", "title": "Per"},
            "max_open": {"type": "integer", "minimum": 1, "maximum": 2**62,
                         "title": "Asked and not answered yet, at most (the remaining completions when empty)"},
            "open_for": {**DURATION, "default": "7d", "title": "An unanswered customer holds a place for"},
        },
        "required": ["poll_id", "max_completions"],
    }

    @classmethod
    def summary(cls, settings: Mapping[str, Any]) -> str | None:
        """'Poll: NPS — at most 100 completions per day'."""
        name = stored_name("polls", settings.get("poll_id"))
        per = settings.get("per", "total")
        per_words = "in total" if per == "total" else f"per {per}"
        poll = f"Poll: {name}" if name else "A chosen poll"
        return f"{poll} — at most {count_in_words(settings.get('max_completions', 0))} completions {per_words}"

    def process(self, batch: Batch) -> Result:
        batch.state()  # locked: two workers running this node take turns, so counts stay exact
        room = self._room(batch)
        if room is None:
            return {"ask": batch.empty(), "limit_reached": batch}
        asked = batch.take(range(min(room, len(batch))))
        waiting = batch.without(asked)
        if len(waiting):
            batch.hold(waiting, batch.now + RECHECK)
        return {"ask": asked, "limit_reached": batch.empty()}

    def _room(self, batch: Batch) -> int | None:
        """How many more may be asked now; None when the poll is closed (its period's
        completions reached, or the poll deleted)."""
        poll_id = self.settings["poll_id"]
        if batch.session.get(Poll, poll_id) is None:
            return None
        since = period_start(batch.now, batch.ctx.account_tz, self.settings["per"])
        remaining = self.settings["max_completions"] - count_responses(batch.session, poll_id, since)
        if remaining <= 0:
            return None
        places = min(remaining, self.settings.get("max_open") or remaining)
        return max(places - self._open(batch, poll_id), 0)

    def _open(self, batch: Batch, poll_id: int) -> int:
        """Customers this node asked within `open_for` who have not completed the poll."""
        step = JourneyStep
        answered = exists().where(PollResponse.poll_id == poll_id, PollResponse.profile_id == step.profile_id)
        since = batch.now - parse_duration(self.settings["open_for"])
        return batch.session.scalar(
            select(func.count(distinct(step.profile_id)))
            .where(step.campaign_id == batch.ctx.campaign_id, step.node_id == self.id, step.port == "ask",
                   step.at > since, ~answered)) or 0


__all__ = ["LimitPoll", "ShowPopup"]
