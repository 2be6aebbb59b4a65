"""The embeddable popup script in a real browser, on a shop page of another origin.

A stand-in shop (a static HTTP server on 127.0.0.1, another port: another origin, with a
strict Content-Security-Policy of its own) includes /embed/popup.js from the real `serve`
process with a site key. The script fetches the visitor's popup across origins, shows it
with hostile text kept as text, reports the view, and a button click that navigates on; the
API then has both as events. Reloading shows nothing: the popup was handed out once.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser.pages import VIEWPORT, watch
from tests.served import wait_for

HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">Winter deal'
HOSTILE_BODY = "<script>window.__pwned=2</script>50% off\nuntil Sunday"
SHOP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src {server}; connect-src {server}; img-src {server}; style-src 'none'">
<title>Shop</title></head>
<body><h1>Our shop</h1>
<script src="{server}/embed/popup.js" data-site-key="{key}" data-external-id="{visitor}"
        data-action="page_view"></script>
</body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[str]:
    """A static site on another port of 127.0.0.1 (so another origin than the server)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _events(ui_server, name: str, visitor: str) -> list[dict]:
    return ui_server.api(f"/api/events?event={name}&external_id={visitor}")["items"]


def _campaign_with_a_popup(ui_server, trigger: str, thanks: str) -> int:
    document = {"name": f"Popup {trigger}", "nodes": [
        {"id": "visit", "type": "event_trigger", "settings": {"event": trigger}, "position": {"x": 0, "y": 0}},
        {"id": "pop", "type": "show_popup", "position": {"x": 0, "y": 120}, "settings": {
            "action": "page_view", "content": {"title": HOSTILE_TITLE, "body": HOSTILE_BODY},
            "buttons": [{"id": "go", "label": "<b>Go</b>", "url": thanks}, {"id": "later", "label": "Later"}]}}],
        "edges": [{"id": "e1", "source": "visit", "source_port": "out", "target": "pop"}]}
    return ui_server.api("/api/campaigns?launch=true", document)["id"]


def test_the_snippet_shows_the_popup_as_text_and_reports_view_and_click(browser, ui_server, shop, tmp_path):
    visitor, trigger = f"visitor-{uuid.uuid4().hex[:8]}", f"embed.visit.{uuid.uuid4().hex[:8]}"
    key = ui_server.api("/api/api-keys", {"name": f"shop {visitor}", "role": "site"})["key"]
    (tmp_path / "shop.html").write_text(SHOP_PAGE.format(server=ui_server.url, key=key, visitor=visitor))
    (tmp_path / "thanks.html").write_text("<!doctype html><title>Thanks</title><p>Thanks</p>")
    (tmp_path / "favicon.ico").write_bytes(b"")  # the browser asks; a 404 would be a console error
    campaign_id = _campaign_with_a_popup(ui_server, trigger, f"{shop}/thanks.html")
    ui_server.api("/api/events", {"event": trigger, "profile": {"external_id": visitor}})
    wait_for(lambda: ui_server.api(f"/api/campaigns/{campaign_id}/stats")["nodes"].get("pop", {}).get("left"),
             what="the popup node to run")

    context = watch(browser.new_context(viewport=VIEWPORT))  # the shop's visitor: no login
    try:
        page = context.new_page()
        page.goto(f"{shop}/shop.html")
        title = page.locator(".cc-popup-title")
        title.wait_for()
        assert title.text_content() == HOSTILE_TITLE
        assert page.locator(".cc-popup-body").text_content() == HOSTILE_BODY
        assert page.locator("[data-button-id=go]").text_content() == "<b>Go</b>"
        assert page.locator(".cc-popup img, .cc-popup script, .cc-popup b").count() == 0
        assert page.evaluate("window.__pwned") is None
        wait_for(lambda: _events(ui_server, "popup.view", visitor), what="the view to be recorded")

        with page.expect_navigation():
            page.click("[data-button-id=go]")
        assert page.url == f"{shop}/thanks.html"
        clicks = wait_for(lambda: _events(ui_server, "popup.click", visitor), what="the click to be recorded")
        assert len(clicks) == 1 and clicks[0]["properties"]["button_id"] == "go"
        assert clicks[0]["properties"]["campaign_id"] == campaign_id
        assert len(_events(ui_server, "popup.view", visitor)) == 1

        with page.expect_response(lambda r: "/api/popups/next" in r.url) as fetched:
            page.goto(f"{shop}/shop.html")
        assert fetched.value.json() == {"popup": None}, "handed out once"
        assert page.locator(".cc-popup").count() == 0
    finally:
        context.close()
    assert not context.page_errors, context.page_errors
    assert not context.console_errors, context.console_errors
