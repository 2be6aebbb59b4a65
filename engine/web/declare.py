"""What each endpoint takes and answers, declared once, beside its view:

    @bp.patch("/<int:audience_id>")
    @accepts("AudienceChange")
    def update_audience(audience_id: int): ...

    @bp.post("")
    @accepts("Audience")
    @responds(201)
    def create_audience(): ...

`accepts` names the request body's schema, `query` the query string's: a `$defs` entry of
schemas/api/*.schema.json. Before the view runs, the request is checked against it and
refused with InvalidInput naming every problem by its JSON pointer (a query parameter by its
name), in the plain words engine/core/jsonschemas.py gives; the view reads what passed with
`engine.web.api.body()` and `args()`. `responds` lists the statuses the view answers with: the
first is the one a view that names none answers, and answering one it does not list fails
loudly. The API description (engine/web/openapi.py) is generated from these declarations,
so it cannot say one thing while the view does another.

A name that no schema declares fails at import, when the view is declared.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from engine.core import jsonschemas
from engine.core.errors import CampaignCanvasError, InvalidInput
from engine.core.pointers import parts, pointer
from engine.web.api import parsed_body
from engine.web.checks import CHECKS, STAND_INS

View = TypeVar("View", bound=Callable[..., Any])
JSON = "application/json"


@dataclass
class Body:
    """A request body: its schema (a declaration name), whether it may be left out, its
    media type, and whether it is checked here (JSON) or by the view (forms, files)."""

    schema: str | None
    required: bool = True
    media_type: str = JSON
    checked: bool = True
    refuse: Callable[[list[dict[str, Any]], Any], CampaignCanvasError] = lambda found, _body: InvalidInput.of(found)


@dataclass
class Declaration:
    """Everything declared about one view (see the module docstring)."""

    body: Body | None = None
    query: str | None = None
    statuses: tuple[int, ...] = (200,)
    media_type: str = JSON
    response: dict[str, Any] | None = None
    #: OpenAPI security requirements, when not the API's (an API key or a login)
    security: list[dict[str, list[str]]] | None = None


def declaration(view: Any) -> Declaration | None:
    """The view's declaration (None for a view that declares nothing)."""
    return getattr(view, "declaration", None)


def accepts(schema: str | None, *, required: bool = True, media_type: str = JSON, checked: bool = True,
            refuse: Callable[[list[dict[str, Any]], Any], CampaignCanvasError] | None = None) -> Callable[[View], View]:
    """The request body is `schema`; `required=False`: it may be left out (read as {}).
    `checked=False` for bodies the view reads itself (files, provider webhooks, which
    prove their sender before anything is read); `refuse` builds the error from the problems
    and the body."""
    if schema is not None:
        _known(schema)
    body = Body(schema, required, media_type, checked, **({"refuse": refuse} if refuse else {}))
    return _declare(lambda d: setattr(d, "body", body))


def query(schema: str) -> Callable[[View], View]:
    """The query string is `schema` (an object schema, one property per parameter)."""
    _known(schema)
    return _declare(lambda d: setattr(d, "query", schema))


def responds(*statuses: int, media_type: str = JSON, schema: dict[str, Any] | None = None,
             security: list[dict[str, list[str]]] | None = None) -> Callable[[View], View]:
    """The statuses the view answers with when it succeeds (the first when it names none),
    the answer's media type and schema, and who may call it when not the API's callers."""
    def update(d: Declaration) -> None:
        d.statuses, d.media_type, d.response, d.security = statuses, media_type, schema, security

    return _declare(update)


def args() -> dict[str, Any]:
    """The query parameters the declaration checked, typed as it says, defaults filled in."""
    if "cc_args" not in g:
        raise LookupError(f"{request.endpoint} reads query parameters it does not declare (@query)")
    return g.cc_args


# --------------------------------------------------------------------------- checking


def _known(schema: str) -> None:
    if schema not in jsonschemas.api_definitions():
        raise LookupError(f"no request schema named {schema!r} in schemas/api/*.schema.json")


def _declare(update: Callable[[Declaration], None]) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        declared = declaration(view)
        if declared is None:
            declared = Declaration()
            view = _wrap(view, declared)
        update(declared)
        return view

    return decorate


def _wrap(view: View, declared: Declaration) -> View:
    """`view`, checking its request and its answer against `declared` (which the view
    carries as its `declaration`, for the decorators above it and the API description)."""
    @functools.wraps(view)
    def checked(*a: Any, **kw: Any) -> ResponseReturnValue:
        if declared.query is not None:
            g.cc_args = _check_query(declared.query)
        if declared.body is not None and declared.body.checked:
            g.cc_body = _check_body(declared.body)
        return _answer(view(*a, **kw), declared)

    vars(checked)["declaration"] = declared
    return cast(View, checked)


def _check_body(declared: Body) -> Any:
    if not declared.required and not request.get_data(cache=True).strip():
        data: Any = {}
    else:
        data = parsed_body()
    if declared.schema is not None and (found := problems(declared.schema, data)):
        raise declared.refuse(found, data)
    return data


def _check_query(schema: str) -> dict[str, Any]:
    spec = jsonschemas.load_definition(schema)
    values = {}
    for name in request.args:
        kind = _resolved(spec["properties"].get(name, {})).get("type")
        raw = request.args.getlist(name)
        if kind in ("integer", "boolean", "array") and not "".join(raw).strip():
            continue  # `?limit=`: as if left out
        values[name] = _typed(kind, raw)
    if found := problems(schema, values):
        raise InvalidInput.of([{**p, "pointer": (parts(p["pointer"]) or [""])[0]} for p in found])  # its name
    defaults = {name: _resolved(prop)["default"] for name, prop in spec["properties"].items()
                if "default" in _resolved(prop)}
    return {**defaults, **values}


def _resolved(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """A parameter's schema, following one `$ref` to a shared one (schemas/api/paging)."""
    ref = spec.get("$ref", "")
    if "#/$defs/" in ref:
        return {**jsonschemas.load_definition(ref.rpartition("#/$defs/")[2]), **spec}
    return spec


#: a whole number as a query parameter: ASCII digits, short enough that int() stays cheap (the
#: schema's own bounds then apply; 64-bit columns hold 19 digits)
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def _typed(kind: str | None, raw: list[str]) -> Any:
    """A query parameter's text as the type its schema says, where it reads as one (else the
    text, which the schema then refuses by name)."""
    if kind == "array":
        return [item.strip() for value in raw for item in value.split(",") if item.strip()]
    text = raw[-1]
    if kind == "integer":  # ASCII digits only (int() reads other scripts' digits), at most 19 of them
        return int(text) if _INTEGER.fullmatch(text) else text
    if kind == "boolean":
        return {"": False, "0": False, "false": False, "no": False, "1": True, "true": True, "yes": True}.get(
            text.lower(), text)
    return text


def problems(schema: str, instance: Any) -> list[dict[str, Any]]:
    """Every problem of `instance` against the declaration `schema`, in plain words."""
    return [{"pointer": pointer(path), "code": code, "message": phrase}
            for path, code, phrase in _compiled(schema).problems(instance)]


@functools.cache
def _compiled(schema: str) -> jsonschemas.RequestSchema:
    return jsonschemas.RequestSchema(jsonschemas.api_definitions()[schema], CHECKS, STAND_INS)


def _answer(returned: ResponseReturnValue, declared: Declaration) -> Response:
    response = current_app.make_response(returned)
    if not isinstance(returned, tuple):
        response.status_code = declared.statuses[0]
    elif response.status_code not in declared.statuses:
        raise AssertionError(f"{request.endpoint} answered {response.status_code}, which its declaration "
                             f"({declared.statuses}) does not list")
    return response
