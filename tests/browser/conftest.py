"""Browser tests: the built UI (canvas_ui/dist) in the system Chromium, driven by Playwright,
against a real `campaign-canvas serve` process.

The fixtures other browser tests rely on:

- `ui_server` (session): the server, with `.url`, `.username` / `.password` (an admin who logs
  in through the form), `.key` (an admin API key) and `.api(path, body=None, method=None)`,
  the JSON answer of an API call that must succeed, to set up and check data;
  `.sendgrid_webhook(events)` posts SendGrid's Event Webhook signed with the key the server
  was given;
- `browser` (session): the Playwright Browser (headless /usr/bin/chromium);
- `context`: a new browser context (1440x900) already logged in as `ui_server.username`;
  `context.console_errors` and `context.page_errors` collect what every page of it reports,
  and the test fails if any page had an uncaught error;
- `page`: a page of `context`, opened at the UI's home page;
- `screenshots` (session): test-artifacts/screenshots, for pictures a test wants to keep.

Nothing here downloads a browser: Debian's `chromium` package is the browser (`make browser`
installs it), and the UI is the one `make ui` builds. When either is missing the tests fail
and say so, they never skip: a green run means the UI was really tested.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.pages import VIEWPORT, log_in, watch
from tests.served import (
    CLI,
    answering,
    api,
    api_key,
    free_port,
    post_signed,
    stop,
    wait_for,
)
from tests.support import WebhookKeys

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
UI_INDEX = ROOT / "canvas_ui" / "dist" / "index.html"
#: a third-party node package the server under test has, as a plugin reaches a deployment
PLUGIN = ROOT / "examples" / "custom_node"
#: quiet, reproducible and offline: no sandbox (containers, root), no GPU, no QUIC, no
#: first-run, background, component-update or sync traffic
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class UiServer:
    """A running `campaign-canvas serve` and the admin it was given."""

    url: str
    username: str
    password: str
    key: str
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen = field(repr=False)
    log: Path = field(repr=False)
    webhooks: WebhookKeys = field(repr=False)

    def api(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """The JSON answer of an API call with the admin key that must succeed (GET, or
        POST when `body` is given, unless `method` says otherwise: PUT, PATCH, DELETE...)."""
        return api(self.url, path, body, self.key, method)

    def sendgrid_webhook(self, events: list[dict[str, Any]]) -> Any:
        """SendGrid's Event Webhook with these events, signed now, as SendGrid signs; its answer."""
        return post_signed(self.url, "/webhooks/sendgrid", json.dumps(events).encode(),
                           self.webhooks.sendgrid.headers)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_running(self) -> None:
        """Fail at once, with the server's output, when it is gone."""
        if self.process.poll() is not None:
            pytest.fail(f"campaign-canvas serve exited ({self.process.returncode}):\n{self.output()[-8000:]}")


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory, server_redis_url, request) -> Iterator[UiServer]:
    """`campaign-canvas serve` (one in-process worker) on 127.0.0.1, a SQLite database in a
    temporary instance folder, a Redis database of its own, examples/custom_node as a plugin,
    an admin login and an admin API key."""
    if not UI_INDEX.is_file():
        pytest.fail(f"{UI_INDEX.relative_to(ROOT)} is missing: `make test` builds the UI (or run `make ui`)")
    folder = tmp_path_factory.mktemp("ui-server")
    webhooks = WebhookKeys()
    env = {**os.environ, **webhooks.environment(), "CC_INSTANCE_DIR": str(folder),
           "DATABASE_URL": f"sqlite:///{folder / 'ui.db'}",
           "REDIS_URL": server_redis_url, "CC_QUEUE": f"ui-{uuid.uuid4().hex[:8]}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(_plugins(folder)), os.environ.get("PYTHONPATH")]))}
    username, password = "ui-admin", secrets.token_urlsafe(16)
    _run([CLI, "migrate"], env)
    _run([CLI, "create-user", username, "--role", "admin"], {**env, "CC_PASSWORD": password})
    key = api_key(env)
    port = free_port()
    log = folder / "serve.log"
    with log.open("w") as out:  # a file, not a pipe: nobody reads a pipe while the tests run
        process = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, text=True)
    server = UiServer(f"http://127.0.0.1:{port}", username, password, key, env, process, log, webhooks)
    try:
        try:
            wait_for(lambda: server.check_running() or answering(server.url), what="the UI server to answer")
        except AssertionError as exc:
            pytest.fail(f"{exc}:\n{server.output()[-8000:]}")
        yield server
    finally:
        died = process.poll() is not None
        stop(process)
        output = server.output()
        if died or "Traceback" in output:
            _show(request, f"--- campaign-canvas serve ({'died' if died else 'stopped'}) ---\n{output[-20000:]}")


def _plugins(folder: Path) -> Path:
    """examples/custom_node installed into a folder of its own (found through its entry
    point on the server's PYTHONPATH): the venv stays as it is (tests/test_custom_node.py
    installs and uninstalls it there), and so does the source tree (built from a copy)."""
    source, target = folder / "custom_node", folder / "plugins"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
          "--target", str(target), str(source)], dict(os.environ))
    return target


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv[:4])} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _show(request: pytest.FixtureRequest, text: str) -> None:
    """Print past pytest's output capture (a session fixture's teardown has no test to
    report it with)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(text)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """The system Chromium, headless, through Playwright (whose own browsers are never used)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (`make browser`)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def login_state(browser: Browser, ui_server: UiServer) -> dict[str, Any]:
    """Cookies of one login through the real form, reused by every logged-in context."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        log_in(page, ui_server)
        return dict(context.storage_state())
    finally:
        context.close()


@pytest.fixture
def context(browser: Browser, ui_server: UiServer, login_state: dict[str, Any]) -> Iterator[BrowserContext]:
    """A fresh logged-in context; the test fails if one of its pages threw an uncaught error."""
    ui_server.check_running()
    made = watch(browser.new_context(viewport=VIEWPORT, storage_state=login_state))
    try:
        yield made
    finally:
        made.close()
    if made.page_errors:
        console = "".join(f"\n  {line}" for line in made.console_errors)
        pytest.fail("uncaught errors in the page:" + "".join(f"\n  {line}" for line in made.page_errors)
                    + (f"\nconsole errors:{console}" if console else ""))


@pytest.fixture
def page(context: BrowserContext, ui_server: UiServer) -> Page:
    """A page of the logged-in context at the UI's home page."""
    opened = context.new_page()
    opened.goto(ui_server.url + "/")
    return opened


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = ROOT / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
