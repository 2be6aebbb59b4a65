"""How much of a request body we read, decided by who is asking, and how JSON bodies are
parsed: once, by engine.core.json_input, for every endpoint.

Until the door (engine/web/access.py) knows the caller, a body may be at most
CC_MAX_ANONYMOUS_BODY_BYTES (64 KiB: a login needs a few hundred bytes): anyone on the
network can send one, so it must not cost us memory. A signed-in user or an API key may
send CC_MAX_BODY_BYTES (16 MiB), room for the largest bodies the API takes (10,000 events
or profiles); a file import, which is written to disk as it arrives, CC_MAX_IMPORT_BYTES;
a provider webhook, whose signature can only be checked once it is read,
CC_MAX_WEBHOOK_BODY_BYTES. A site key is published in web pages, so it counts as nobody.

A body over the limit is refused with 413 when it is first read, from its Content-Length,
before a byte of it is read (a chunked body stops at the limit): `too_large` words the
answer, which server.py sends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import flask
from flask import Flask, g, request

from engine.core import json_input
from engine.core.config import Settings
from engine.core.errors import BodyTooLarge

View = TypeVar("View", bound=Callable[..., Any])

#: why the anonymous limit applies, in the 413's words
ANONYMOUS = "before you sign in"
_WHY = "body_limit_why"


class Request(flask.Request):
    """Flask's request, whose `get_json()` parses through engine.core.json_input wherever it is
    called. Flask hands every request the app's JSON provider, which also writes answers
    (and reads them back in test clients): those keep Flask's JSON, bodies get ours."""

    @property
    def json_module(self) -> Any:
        return json_input

    @json_module.setter
    def json_module(self, _provider: Any) -> None:
        """Flask sets the app's provider on each new request; bodies keep ours."""


def install(app: Flask, settings: Settings) -> None:
    """Every request starts at the anonymous limit; `admit` raises it once the caller is known."""
    app.request_class = Request
    app.config["MAX_CONTENT_LENGTH"] = settings.max_anonymous_body_bytes


def file_upload(view: View) -> View:
    """The view streams its body to disk (a file import): CC_MAX_IMPORT_BYTES applies."""
    setattr(view, "file_upload", True)  # noqa: B010 (a function attribute mypy cannot know)
    return view


def admit(settings: Settings, view: Any, known: bool, webhook: bool = False) -> None:
    """Set the current request's body limit: `known` when a user or a (non-site) API key
    makes it, `webhook` for provider webhooks."""
    if webhook:
        _limit(settings.max_webhook_body_bytes, "for a provider webhook")
    elif known and getattr(view, "file_upload", False):
        _limit(settings.max_import_bytes, "for a file import")
    elif known:
        _limit(settings.max_body_bytes, "in one request: send the items in several requests")


def too_large() -> BodyTooLarge:
    """The error for the current request's body, naming its size and the limit that applies."""
    size = request.content_length
    what = f"the request body is {size:,} bytes" if size is not None else "the request body is too large"
    message = f"{what}; at most {request.max_content_length or 0:,} bytes are accepted {g.get(_WHY, ANONYMOUS)}"
    return BodyTooLarge(message, [{"pointer": "", "message": message}])


def _limit(size: int, why: str) -> None:
    request.max_content_length = size
    setattr(g, _WHY, why)
