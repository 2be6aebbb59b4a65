"""What browser tests do to pages and contexts: log in through the form, watch for errors.

The fixtures (tests/browser/conftest.py) use these; a test that makes a context of its
own (an anonymous visitor, a second user) uses them too.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page

VIEWPORT = {"width": 1440, "height": 900}


def log_in(page: Page, server: Any) -> None:
    """Fill in and send the login form (the page is on it, or is sent to it); fail unless
    the browser ends up in the app."""
    if "/login" not in page.url:
        page.goto(server.url + "/login")
    page.fill("#username", server.username)
    page.fill("#password", server.password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/login" in page.url:
        pytest.fail(f"logging in as {server.username} failed: {page.inner_text('body')[:500]}")


def watch(context: BrowserContext) -> BrowserContext:
    """Collect the console errors and uncaught errors of every page of `context`, as
    `context.console_errors` and `context.page_errors` (lists of "URL: message"), so a test
    sees a page that broke even when what it checks still happens to show."""
    console_errors: list[str] = []
    page_errors: list[str] = []
    context.console_errors, context.page_errors = console_errors, page_errors  # type: ignore[attr-defined]

    def follow(page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                console_errors.append(f"{page.url}: {message.text}")

        def on_error(error: Error) -> None:
            page_errors.append(f"{page.url}: {error}")

        page.on("console", on_console)
        page.on("pageerror", on_error)

    context.on("page", follow)
    return context
