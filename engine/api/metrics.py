"""`GET /metrics`: the Prometheus exposition of engine/metrics.py, for any API key or login.

Outside /api/ on purpose: it is for Prometheus, not part of the REST API (nor of its
OpenAPI description). Prometheus sends the key with `authorization: {credentials: <key>}`
(`Authorization: Bearer <key>`); a viewer key suffices.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from prometheus_client.exposition import choose_encoder

from engine import metrics
from engine.api import runtime

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():  # type: ignore[no-untyped-def]
    # the format Prometheus asks for in Accept (OpenMetrics, or the classic text format)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(metrics.registry_for(runtime())), content_type=content_type)
