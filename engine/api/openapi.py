"""The OpenAPI 3.1 description of the REST API, served at /api/openapi.json.

Paths, methods and parameters come from the app's own URL map, so an endpoint cannot be
missing from it; request bodies name the JSON Schemas the endpoints validate against
(the campaign document schema is the very file `engine/validation.py` uses).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from engine.api.access import public

bp = Blueprint("openapi", __name__)

SCHEMAS = Path(__file__).resolve().parent.parent.parent / "schemas"
_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
WRITE_METHODS = ("POST", "PUT", "PATCH")

_OBJECT = {"type": "object"}
_IDENTITY = {"type": "object", "description": "The customer, by one of these identifiers.",
             "properties": {"external_id": {"type": "string"}, "email": {"type": "string"},
                            "phone": {"type": "string"}},
             "minProperties": 1}
_EVENT = {"type": "object", "required": ["event", "profile"],
          "properties": {"event": {"type": "string", "minLength": 1, "maxLength": 128}, "profile": _IDENTITY,
                         "properties": _OBJECT, "timestamp": {"type": "string", "format": "date-time"},
                         "params": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                               "properties": {"name": {"type": "string"},
                                                                              "value": {}}}}}}
_PROFILE = {"type": "object", "properties": {
    "external_id": {"type": "string"}, "email": {"type": "string"}, "phone": {"type": "string"},
    "timezone": {"type": "string"}, "attributes": _OBJECT, "push_tokens": {"type": "array"},
    "email_opt_out": {"type": "boolean"}, "sms_opt_out": {"type": "boolean"}, "push_opt_out": {"type": "boolean"}}}
_RULES = {"$ref": "#/components/schemas/Rules"}
_SEGMENT = {"type": "object", "required": ["name", "rules"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                           "description": {"type": "string"}, "rules": _RULES}}
_NAMED = {"type": "object", "required": ["name"],
          "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                         "description": {"type": "string"}}}
_MEMBERS = {"type": "object", "properties": {"profile_ids": {"type": "array", "items": {"type": "integer"}},
                                             "profiles": {"type": "array", "items": _IDENTITY}}}
_ROLE = {"type": "string", "enum": ["admin", "marketer", "viewer"]}
_KEY_ROLE = {"type": "string", "enum": ["admin", "marketer", "viewer", "site"],
             "description": "site: a key for web pages, allowed only to fetch popups"}
_QUESTION = {"type": "object", "required": ["id", "text", "answers"], "additionalProperties": False,
             "properties": {"id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                            "text": {"type": "string", "minLength": 1, "maxLength": 1000},
                            "multiple": {"type": "boolean", "default": False},
                            "answers": {"type": "array", "minItems": 1, "maxItems": 50, "items": {
                                "type": "object", "required": ["id", "text"], "additionalProperties": False,
                                "properties": {"id": {"type": "string"},
                                               "text": {"type": "string", "minLength": 1, "maxLength": 1000}}}}}}
_POLL = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                                          "description": {"type": "string"},
                                          "questions": {"type": "array", "minItems": 1, "maxItems": 100,
                                                        "items": _QUESTION}}}

#: request bodies by endpoint (blueprint.view); an endpoint missing here takes any JSON
BODIES: dict[str, dict[str, Any]] = {
    "campaigns.create_campaign": {"$ref": "#/components/schemas/Campaign"},
    "campaigns.update_campaign": {"$ref": "#/components/schemas/Campaign"},
    "campaigns.validate_unsaved": {"$ref": "#/components/schemas/Campaign"},
    "campaigns.clone_campaign": {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}},
    "node_types.node_type_ports": {"type": "object", "required": ["settings"],
                                   "properties": {"settings": {"type": "object",
                                                               "description": "The node's settings, as edited"}}},
    "events.post_event": _EVENT,
    "events.post_batch": {"type": "object", "required": ["events"],
                            "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 10000,
                                                      "items": _EVENT}}},
    "events.create_event_type": _NAMED,
    "events.update_event_type": {"type": "object", "properties": {"description": {"type": "string"}}},
    "profiles.upsert_profiles": {"type": "object", "required": ["profiles"],
                                 "properties": {"profiles": {"type": "array", "minItems": 1, "maxItems": 10000,
                                                             "items": _PROFILE}}},
    "profiles.update_profile": _PROFILE,
    "segments.create_segment": _SEGMENT,
    "segments.update_segment": _SEGMENT,
    "segments.preview_rules": {"type": "object", "required": ["rules"], "properties": {"rules": _RULES}},
    "audiences.create_audience": _NAMED,
    "audiences.update_audience": _NAMED,
    "audiences.add_members": _MEMBERS,
    "audiences.remove_members": _MEMBERS,
    "access.api_login": {"type": "object", "required": ["username", "password"],
                         "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
    "access.create_user": {"type": "object", "required": ["username", "password"],
                           "properties": {"username": {"type": "string"}, "password": {"type": "string", "minLength": 8},
                                          "role": _ROLE}},
    "access.update_user": {"type": "object", "properties": {"password": {"type": "string", "minLength": 8},
                                                            "role": _ROLE, "disabled": {"type": "boolean"}}},
    "access.create_key": {"type": "object", "required": ["name"],
                          "properties": {"name": {"type": "string", "minLength": 1}, "role": _KEY_ROLE}},
    "polls.create_poll": {**_POLL, "required": ["name", "questions"]},
    "polls.update_poll": _POLL,
    "polls.post_response": {
        "type": "object", "required": ["answers"],
        "description": "The customer by profile_id or by profile (identifiers); answers: {question id: [answer ids]}",
        "properties": {"profile_id": {"type": "integer", "minimum": 1}, "profile": _IDENTITY,
                       "answers": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1,
                                                                              "items": {"type": "string"}}}}},
    "popups.report_popup": {"type": "object", "required": ["token", "event"],
                            "properties": {"token": {"type": "string", "maxLength": 64},
                                           "event": {"type": "string", "enum": ["view", "click"]},
                                           "button": {"type": "string", "description": "The button id (clicks)"}}},
}

_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string", "examples": ["invalid_input", "invalid_document", "not_found"]},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "properties": {
            "pointer": {"type": "string", "description": "JSON pointer (body) or parameter name"},
            "node_id": {"type": "string"}, "message": {"type": "string"}, "code": {"type": "string"}}}}}}},
}


@bp.get("/api/openapi.json")
@public
def openapi_json():  # type: ignore[no-untyped-def]
    return jsonify(describe(current_app))


def describe(app: Flask) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api/") or rule.endpoint == "openapi.openapi_json":
            continue
        view = app.view_functions[rule.endpoint]
        path, parameters = _path(rule.rule)
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
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (create-api-key)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session",
                            "description": "The web UI's login (POST /api/auth/login)"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "Required with the session cookie on changes; from GET /api/auth/me"},
            },
            "schemas": {"Error": _ERROR, "Campaign": _campaign_schema(), "Rules": _rules_schema()},
        },
    }


def _operation(endpoint: str, method: str, view: Any, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    doc = (view.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.replace('.', '_')}_{method.lower()}",
        "tags": [endpoint.split(".")[0] if "." in endpoint else "core"],
        "summary": doc.splitlines()[0] if doc else endpoint.split(".")[-1].replace("_", " "),
        "parameters": parameters,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": _OBJECT}}},
            "4XX": {"description": "The request was refused; nothing changed.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }
    if doc:
        operation["description"] = doc
    if method in WRITE_METHODS:
        operation["requestBody"] = {"required": endpoint in BODIES, "content": {
            "application/json": {"schema": BODIES.get(endpoint, {})}}}
    if getattr(view, "public", False):
        operation["security"] = []
    return operation


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters = []

    def replace(match: re.Match[str]) -> str:
        converter, args, name = match["converter"], match["args"], match["name"]
        schema: dict[str, Any] = {"type": "integer"} if converter in ("int", "bigid") else {"type": "string"}
        if converter == "any" and args:
            schema["enum"] = [a.strip().strip("'\"") for a in args.split(",")]
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _ARGUMENT.sub(replace, rule), parameters


def _campaign_schema() -> dict[str, Any]:
    return _embedded(json.loads((SCHEMAS / "campaign.schema.json").read_text()), "Campaign")


def _rules_schema() -> dict[str, Any]:
    from engine.rules import RULES_SCHEMA

    return _embedded(RULES_SCHEMA, "Rules")


def _embedded(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """A standalone schema as components/schemas/<name>: its root-relative refs re-rooted."""
    text = json.dumps({k: v for k, v in schema.items() if k not in ("$schema", "$id")})
    return json.loads(text.replace('"#/$defs/', f'"#/components/schemas/{name}/$defs/'))
