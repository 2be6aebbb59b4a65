"""`GET /metrics`: the Prometheus exposition of engine/ops/metrics.py, for any API key or login.

Outside /api/ on purpose: it is for Prometheus, not part of the REST API (the OpenAPI
description lists it, as text). Prometheus sends the key with `authorization: {credentials: <key>}`
(`Authorization: Bearer <key>`); a viewer key suffices.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from prometheus_client.exposition import choose_encoder

from engine.ops import metrics
from engine.web.api import runtime
from engine.web.declare import responds

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@responds(200, media_type="text/plain", security=[{"bearer": []}, {"session": []}])
def scrape() -> ResponseReturnValue:
    """The Prometheus exposition (the OpenMetrics format when Accept asks for it)."""
    # the format Prometheus asks for in Accept (OpenMetrics, or the classic text format)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(metrics.registry_for(runtime())), content_type=content_type)
