"""REST API blueprints, one module per area; `server.py` registers them and owns the single
error handler that turns our errors into `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from engine.clock import iso  # noqa: F401  (re-exported for the blueprints)
from engine.errors import InvalidInput
from engine.pointers import token
from engine.runtime import Runtime


def runtime() -> Runtime:
    """The runtime of the app handling this request."""
    return current_app.extensions["campaign_canvas"]


def body() -> Any:
    """The request's JSON body as its declaration checked it (`@accepts`, engine/api/declare.py)."""
    if "cc_body" not in g:
        raise LookupError(f"{request.endpoint} reads a request body it does not declare (@accepts)")
    return g.cc_body


def parsed_body() -> Any:
    """The request's JSON body, or InvalidInput naming what is wrong."""
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidInput("the request body must be JSON (Content-Type: application/json)",
                           [{"pointer": "", "message": "missing or malformed JSON body"}])
    if b"\\u0000" in request.get_data(cache=True) and (pointer := _nul_at(data, "")) is not None:
        raise InvalidInput.field(pointer, "must not contain the NUL character (\\u0000)")
    return data


def _nul_at(value: Any, pointer: str) -> str | None:
    """Where a NUL character hides (no database text column can store one), or None."""
    if isinstance(value, str):
        return pointer if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = f"{pointer}/{token(key)}"
        if "\x00" in str(key):
            return here
        if (found := _nul_at(item, here)) is not None:
            return found
    return None
