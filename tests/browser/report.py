"""What the report and realtime browser tests build through the public HTTP API, and how
they read the pages: campaign documents, customers, an email provider pointing at a real
SendGrid stand-in, delivery webhooks, polling the API until the engine got there, and the
figures formatted the way the report page shows them (canvas_ui/src/report/format.ts)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from playwright.sync_api import Page

from tests.standins import SendGridStandIn

NONE = "–"
#: how long the engine (a real clock, an in-process worker) may take to get somewhere
SETTLE = 30.0


def tag() -> str:
    return uuid.uuid4().hex[:8]


def email_provider(server: Any, sendgrid: SendGridStandIn) -> int:
    """An email provider config sending through the stand-in; its id."""
    created = server.api("/api/providers", {
        "channel": "email", "kind": "sendgrid", "name": f"SendGrid stand-in {tag()}",
        "settings": sendgrid.settings(activity_settle_seconds=0), "secrets": sendgrid.secrets()})
    return int(created["id"])


def node(node_id: str, node_type: str, settings: dict[str, Any], x: int, y: int, label: str | None = None) -> dict:
    return {"id": node_id, "type": node_type, "settings": settings, "position": {"x": x, "y": y},
            **({"label": label} if label else {})}


def email(provider_id: int, subject: str) -> dict[str, Any]:
    return {"provider_id": provider_id, "deliver_immediately": True,
            "content": {"subject": subject, "html": f"<p>{subject}</p>", "text": subject}}


def edges(*links: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"id": f"e{i}", "source": s, "source_port": p, "target": t} for i, (s, p, t) in enumerate(links)]


def customers(server: Any, prefix: str, count: int, start: int = 0) -> list[str]:
    """`count` new profiles; their emails."""
    emails = [f"{prefix}-{i}@example.com" for i in range(start, start + count)]
    server.api("/api/profiles", {"profiles": [{"email": e, "external_id": f"{prefix}-{i}"}
                                              for i, e in zip(range(start, start + count), emails, strict=True)]})
    return emails


def post_events(server: Any, event: str, emails: Iterable[str]) -> None:
    items = [{"event": event, "profile": {"email": e}} for e in emails]
    if items:
        server.api("/api/events/batch", {"events": items})


def until(predicate: Callable[[], Any], what: str, timeout: float = SETTLE, every: float = 0.25) -> Any:
    """The first truthy value of `predicate()`, polled; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def report(server: Any, campaign_id: int, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return server.api(f"/api/campaigns/{campaign_id}/report" + (f"?{query}" if query else ""))


def actions(server: Any, campaign_id: int, **params: Any) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return server.api(f"/api/campaigns/{campaign_id}/actions" + (f"?{query}" if query else ""))


def sendgrid_events(deliveries: list[dict[str, Any]], kind: str, **extra: Any) -> list[dict[str, Any]]:
    """SendGrid Event Webhook items for these messages, as the stand-in received them: their
    address, and the custom args we sent (the signed outbox reference) at the top level, as
    SendGrid posts them."""
    now = int(time.time()) - 1
    return [{"email": d["to"], "timestamp": now, "event": kind, "sg_event_id": f"{kind}-{n}-{tag()}",
             "sg_message_id": f"msg{n}.filter0001", **d["custom_args"], **extra} for n, d in enumerate(deliveries)]


# -- the page's formatting (canvas_ui/src/report/format.ts) ------------------------------
def percent(rate: float | None) -> str:
    return NONE if rate is None else f"{_fixed(rate * 100)}%"


def points(diff: float | None) -> str:
    if diff is None:
        return NONE
    value = diff * 100
    sign = "+" if value > 0 else "\u2212" if value < 0 else "±"
    return f"{sign}{_fixed(abs(value))} pp"


def _fixed(value: float) -> str:
    """JavaScript's `toFixed(1)` of a number >= 0: the nearest decimal to the exact binary
    value, a tie going up."""
    return str(Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def count(n: int) -> str:
    return f"{n:,}"


# -- reading the pages -------------------------------------------------------------------
def full_page_screenshot(page: Page, path: str, scroller: str) -> None:
    """The whole page although it scrolls inside `scroller` (the app fills the window): the
    window is made as tall as the content for the picture, then put back."""
    size = page.viewport_size or {"width": 1440, "height": 900}
    extra = page.evaluate(f"() => {{ const el = document.querySelector({scroller!r}); "
                          "return el ? el.scrollHeight - el.clientHeight : 0; }")
    page.set_viewport_size({"width": size["width"], "height": size["height"] + max(0, int(extra))})
    page.wait_for_timeout(300)  # the charts follow their containers' size
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(size)


def console_errors(page: Page, *, allow: tuple[str, ...] = ()) -> list[str]:
    """What the pages of `page`'s context logged as errors (tests/browser/pages.py `watch`),
    but for lines containing one of `allow`."""
    logged: list[str] = getattr(page.context, "console_errors", [])
    return [line for line in logged if not any(a in line for a in allow)]
