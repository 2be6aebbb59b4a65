"""The OpenAPI 3.1 description of the API, served at /api/openapi.json.

Generated from what the app runs on, so the two cannot drift: paths, methods and path
parameters from its URL map (every route but the browser's pages), and per operation the
declaration its view is checked and answered with (engine/web/declare.py): the request
body's and query string's schemas (schemas/api/*.schema.json, whose `$defs` become
components/schemas), the success statuses, who may call it. The campaign document's schema
is the very file engine/core/validation.py uses; the rule language's is engine/core/rules.py's.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.routing import Rule

from engine.core import jsonschemas
from engine.core.models import MAX_ID
from engine.core.rules import RULES_SCHEMA
from engine.web.access import public
from engine.web.checks import CAMPAIGN, RULES
from engine.web.declare import JSON, Declaration, declaration, responds

bp = Blueprint("openapi", __name__)

_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
#: converters and the schema of their path parameter
_CONVERTERS = {"int": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
               "bigid": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
_COMPONENT = "#/components/schemas/"
_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string", "examples": ["invalid_input", "invalid_document", "not_found"]},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "properties": {
            "pointer": {"type": "string", "description": "JSON pointer (body) or parameter name"},
            "node_id": {"type": ["string", "null"]}, "message": {"type": "string"}, "code": {"type": "string"}}}}}}},
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (POST /api/api-keys)"},
    "session": {"type": "apiKey", "in": "cookie", "name": "session",
                "description": "The web UI's login (POST /api/auth/login)"},
    "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
             "description": "Required with the session cookie on changes; from GET /api/auth/me"},
    "sendgridSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Email-Event-Webhook-Signature",
                          "description": "SendGrid's signed webhook (ECDSA over the timestamp header and the body), "
                                         "checked when a verification key is configured"},
    "twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
                        "description": "Twilio's HMAC-SHA1 of the URL and the form, checked when an auth token "
                                       "is configured"},
    "pushToken": {"type": "http", "scheme": "bearer",
                  "description": "CC_PUSH_WEBHOOK_TOKEN, when it is set"},
}


@bp.get("/api/openapi.json")
@public
@responds(200)
def openapi_json() -> ResponseReturnValue:
    """This description."""
    return jsonify(describe(current_app))


def describe(app: Flask) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        if getattr(view, "page", False):
            continue
        path, parameters = _path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, method, view, parameters)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Campaign Canvas API", "version": "1",
                 "description": "Customer campaigns as graphs. Every 4xx answer is an Error; a request that "
                                "fails changes nothing."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": [], "csrf": []}],
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": components()},
    }


def components() -> dict[str, Any]:
    """Every declaration of schemas/api, the campaign document and the rule language."""
    found: dict[str, Any] = {"Error": _ERROR, "Campaign": _embedded(jsonschemas.load("campaign.schema.json"),
                                                                     "Campaign"),
                             "Rules": _embedded(RULES_SCHEMA, "Rules")}
    for name, uri in jsonschemas.api_definitions().items():
        found[name] = _rerooted(jsonschemas.load_definition(name), uri)
    return found


def _operation(endpoint: str, method: str, view: Any, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    declared = declaration(view) or Declaration()
    doc = (view.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.replace('.', '_')}_{method.lower()}",
        "tags": [endpoint.split(".")[0] if "." in endpoint else "core"],
        "summary": doc.splitlines()[0] if doc else endpoint.split(".")[-1].replace("_", " "),
        "parameters": parameters + _query(declared),
        "responses": _responses(declared),
    }
    if doc:
        operation["description"] = doc
    if declared.body is not None:
        schema = {"$ref": _COMPONENT + declared.body.schema} if declared.body.schema else {}
        operation["requestBody"] = {"required": declared.body.required,
                                    "content": {declared.body.media_type: {"schema": schema}}}
    if declared.security is not None:
        operation["security"] = declared.security
    elif getattr(view, "public", False):
        operation["security"] = []
    return operation


def _responses(declared: Declaration) -> dict[str, Any]:
    schema = declared.response or ({"type": "object"} if declared.media_type == JSON else {"type": "string"})
    answers: dict[str, Any] = {str(status): {"description": "OK", "content": {declared.media_type: {"schema": schema}}}
                               for status in declared.statuses}
    error = {"application/json": {"schema": {"$ref": _COMPONENT + "Error"}}}
    if declared.body is not None:
        answers["413"] = {"description": "The body is larger than this caller may send (CC_MAX_*_BYTES); "
                                         "nothing of it was read.", "content": error}
    answers["4XX"] = {"description": "The request was refused; nothing changed.", "content": error}
    return answers


def _query(declared: Declaration) -> list[dict[str, Any]]:
    if declared.query is None:
        return []
    spec = jsonschemas.load_definition(declared.query)
    uri = jsonschemas.api_definitions()[declared.query]
    required = set(spec.get("required", []))
    parameters = []
    for name, schema in spec.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "required": name in required,
                     "schema": _rerooted(schema, uri)}
        if schema.get("type") == "array":
            parameter.update(style="form", explode=False)
        if "description" in schema:
            parameter["description"] = schema["description"]
        parameters.append(parameter)
    return parameters


def _path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    parameters = []

    def replace(match: re.Match[str]) -> str:
        converter, args, name = match["converter"], match["args"], match["name"]
        schema: dict[str, Any] = dict(_CONVERTERS.get(converter or "", {"type": "string"}))
        if converter == "any" and args:
            schema["enum"] = [a.strip().strip("'\"") for a in args.split(",")]
        if converter in (None, "default"):
            schema.update(minLength=1, pattern="^[^/]+$")
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _ARGUMENT.sub(replace, rule.rule), parameters


def _rerooted(schema: Any, base: str) -> Any:
    """A declaration as a component: its `$ref`s pointed at components/schemas."""
    if isinstance(schema, dict):
        return {key: _component_ref(value, base) if key == "$ref" else _rerooted(value, base)
                for key, value in schema.items() if key not in ("$schema", "$id")}
    if isinstance(schema, list):
        return [_rerooted(item, base) for item in schema]
    return schema


def _component_ref(ref: str, base: str) -> str:
    uri = urljoin(base, ref)
    if uri.startswith(RULES):
        return _COMPONENT + "Rules"
    if uri.startswith(CAMPAIGN):
        return _COMPONENT + "Campaign" + uri[len(CAMPAIGN):].removeprefix("#")
    return _COMPONENT + uri.rpartition("#/$defs/")[2]


def _embedded(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """A standalone schema as components/schemas/<name>: its root-relative refs re-rooted."""
    text = json.dumps({k: v for k, v in schema.items() if k not in ("$schema", "$id")})
    return json.loads(text.replace('"#/$defs/', f'"{_COMPONENT}{name}/$defs/'))
