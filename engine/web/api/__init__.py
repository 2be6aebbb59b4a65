"""REST API blueprints, one module per area; `server.py` registers them and owns the single
error handler that turns our errors into `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from engine.core.clock import iso  # noqa: F401  (re-exported for the blueprints)
from engine.core.errors import InvalidInput
from engine.ops.runtime import Runtime


def runtime() -> Runtime:
    """The runtime of the app handling this request."""
    return current_app.extensions["campaign_canvas"]


def body() -> Any:
    """The request's JSON body as its declaration checked it (`@accepts`, engine/web/declare.py)."""
    if "cc_body" not in g:
        raise LookupError(f"{request.endpoint} reads a request body it does not declare (@accepts)")
    return g.cc_body


def parsed_body() -> Any:
    """The request's JSON body, or InvalidInput naming what is wrong. Parsed by
    engine.core.json_input (see engine/web/bodies.py): too deep, NaN, or text no database stores
    (NUL, a lone surrogate) is refused naming where it is."""
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidInput("the request body must be JSON (Content-Type: application/json)",
                           [{"pointer": "", "message": "missing or malformed JSON body"}])
    return data
