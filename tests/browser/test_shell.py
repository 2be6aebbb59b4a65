"""The app shell in a real browser: the login in front of it, who is logged in, and the
Content-Security-Policy the pages run under (which must not block the app itself)."""

from __future__ import annotations

from playwright.sync_api import Response

from tests.browser.pages import VIEWPORT, log_in, watch

CSP_START = "default-src 'self'; script-src 'self' 'unsafe-eval'"


def test_an_anonymous_visitor_logs_in_through_the_form_and_sees_the_shell(browser, ui_server, screenshots):
    context = watch(browser.new_context(viewport=VIEWPORT))  # no stored login
    try:
        page = context.new_page()
        login = page.goto(ui_server.url + "/")
        assert "/login" in page.url, "the UI asks for a login first"
        assert login.headers["content-security-policy"].startswith(CSP_START)
        assert login.headers["x-frame-options"] == "DENY"

        log_in(page, ui_server)
        assert page.url.rstrip("/") == ui_server.url
        who = page.locator("[data-testid=who]")
        who.wait_for()
        assert ui_server.username in who.inner_text()
        page.screenshot(path=str(screenshots / "shell-after-login.png"))
    finally:
        context.close()
    assert not context.page_errors, context.page_errors
    assert not [e for e in context.console_errors if "Content Security Policy" in e], context.console_errors


def test_the_app_and_its_assets_carry_the_headers_and_the_policy_blocks_nothing(page, ui_server):
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    document = page.goto(ui_server.url + "/")
    page.locator("[data-testid=who]").wait_for()
    assert ui_server.username in page.locator("[data-testid=who]").inner_text()

    assert document.headers["content-security-policy"].startswith(CSP_START)
    assert document.headers["cache-control"] == "no-cache"
    assets = [r for r in responses if "/assets/" in r.url]
    assert assets, "the page loads the built UI's assets"
    for asset in assets:
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable", asset.url
        assert asset.headers["x-content-type-options"] == "nosniff", asset.url
    blocked = [e for e in page.context.console_errors if "Content Security Policy" in e]
    assert not blocked, blocked
