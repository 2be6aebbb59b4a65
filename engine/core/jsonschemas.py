"""The JSON Schemas in schemas/, and what their errors say in plain words.

Two kinds of caller read them: campaign validation (schemas/campaign.schema.json) and the
REST API, whose request bodies and query strings are declared in schemas/api/, one
`$defs` entry each (engine/web/declare.py). The same files feed /api/openapi.json, so what
is described is what is checked.

A schema may say more than JSON Schema can, with keywords of ours:
- `x-message`: what to tell a person when a value breaks this (sub)schema, instead of
  the keyword's own sentence ("must be a non-empty name of up to 200 characters");
- `x-kind`: what an object is called, for its unknown fields ("is not a segment field
  (expected name, description, rules)").

- `x-check`: a check of ours the value must pass too, for what a schema cannot say (an
  email address, a time zone); its problems come in the same pass, at their pointers.

And where code checks a whole kind of value better than its schema could (the rule
language, engine/core/rules.py), a `$ref` to that schema can run the code instead (`stand_ins`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jsonschema_rs
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from engine.core.pointers import parts, pointer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
API = SCHEMAS / "api"
BASE = "https://campaign-canvas.local/schemas/"

#: problems of a value as `{"pointer", "message"}`, pointers relative to the value
Checker = Callable[[Any], list[dict[str, Any]]]
#: (instance path, problem code, phrase)
Found = tuple[list[Any], str, str]

_TYPE_WORDS = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "object": "an object",
    "array": "a list",
    "boolean": "true or false",
    "null": "empty (null)",
}
#: lists longer than this are explained item by item that fails (see `RequestSchema`)
LONG_LIST = 50
#: our keyword naming a check of ours that a value must pass too (see `validator`)
CHECK = "x-check"


# --------------------------------------------------------------------------- the files


@functools.cache
def load(relative: str) -> dict[str, Any]:
    """A schema file under schemas/, parsed once per process."""
    return json.loads((SCHEMAS / relative).read_text(encoding="utf-8"))


@functools.cache
def api_files() -> dict[str, dict[str, Any]]:
    """Every schemas/api/*.schema.json by its URI (`$id`)."""
    files = {}
    for path in sorted(API.glob("*.schema.json")):
        schema = load(f"api/{path.name}")
        uri = f"{BASE}api/{path.name}"
        if schema.get("$id") != uri:
            raise ValueError(f"{path}: $id must be {uri}")
        Draft202012Validator.check_schema(schema)
        files[uri] = schema
    return files


@functools.cache
def api_definitions() -> dict[str, str]:
    """The URI of every declaration (a `$defs` entry of a schemas/api file) by its name;
    names are unique across the files, since the API description lists them side by side."""
    found: dict[str, str] = {}
    for uri, schema in api_files().items():
        for name in schema.get("$defs", {}):
            if name in found:
                raise ValueError(f"{name} is declared twice: in {found[name]} and {uri}")
            found[name] = f"{uri}#/$defs/{name}"
    return found


def load_definition(name: str) -> dict[str, Any]:
    """The declaration `name` (a `$defs` entry of a schemas/api file) as written."""
    uri, _, fragment = api_definitions()[name].partition("#/$defs/")
    return api_files()[uri]["$defs"][fragment]


def registry(extra: Mapping[str, Mapping[str, Any]]) -> Registry:
    """The API files, the campaign schema and `extra` (uri -> schema), for `$ref`s."""
    resources = {**api_files(), f"{BASE}campaign.schema.json": load("campaign.schema.json"), **extra}
    return Registry().with_resources((uri, DRAFT202012.create_resource(dict(schema)))
                                     for uri, schema in resources.items())


def references(schema: Any, base: str) -> Iterator[str]:
    """Every `$ref` in `schema`, resolved against `base` (its file's URI)."""
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield urljoin(base, value)
            else:
                yield from references(value, base)
    elif isinstance(schema, list):
        for item in schema:
            yield from references(item, base)


# --------------------------------------------------------------------------- validating


class RequestSchema:
    """The schema at `ref` (a URI) as requests are checked against it. `"x-check": name` in
    it runs the check `name` too, in the same pass; a `$ref` to a URI in `stand_ins` runs its
    check instead of the schema there (None: the caller checks those values itself).

    Compiled twice: jsonschema-rs says fast whether a value passes (a batch of 10,000 events
    in a fraction of the time), and only a value it refuses is explained, every problem in
    plain words, by jsonschema, which has the last word. Of a long list (a batch) only the
    items jsonschema-rs refuses are explained; a list of the wrong size is refused as such,
    its items unread."""

    def __init__(self, ref: str, checks: Mapping[str, Checker], stand_ins: Mapping[str, str | None]):
        replaced = {uri: {CHECK: name} if name else {} for uri, name in stand_ins.items()}
        cls = validators.extend(Draft202012Validator, {CHECK: _check(checks)})
        self.explaining = cls({"$ref": ref}, registry=registry(replaced))
        resources = {**api_files(), f"{BASE}campaign.schema.json": load("campaign.schema.json"), **replaced}
        self.deciding = jsonschema_rs.validator_for(
            {"$ref": ref}, registry=jsonschema_rs.Registry(list(resources.items())), validate_formats=False,
            keywords={CHECK: _fast_check(checks)})

    def problems(self, instance: Any) -> list[Found]:
        """What is wrong with `instance` (nothing when it passes)."""
        if self.deciding.is_valid(instance):
            return []
        if not isinstance(instance, Mapping):
            return schema_errors(self.explaining, instance)
        refused = list(self.deciding.iter_errors(instance))
        if sizes := [e for e in refused if len(e.instance_path) == 1 and _is_size(e)]:
            return [([e.instance_path[0]], "invalid_field", _size_phrase(e)) for e in sizes]
        reduced, origins = _failing_items(instance, refused)
        found = [([*path[:1], origins[path[0]][path[1]], *path[2:]] if path[:1] and path[0] in origins else path, code,
                  phrase) for path, code, phrase in schema_errors(self.explaining, reduced)]
        return found or schema_errors(self.explaining, instance)  # should they ever disagree


def _failing_items(instance: Mapping[str, Any], refused: list[Any]) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """`instance` with each long list cut to the items jsonschema-rs refused, and where each
    kept item stood."""
    reduced, origins = dict(instance), {}
    for key, value in instance.items():
        if isinstance(value, list) and len(value) > LONG_LIST:
            kept = sorted({e.instance_path[1] for e in refused
                           if len(e.instance_path) > 1 and e.instance_path[0] == key})
            reduced[key], origins[key] = [value[i] for i in kept], kept
    return reduced, origins


def _is_size(error: Any) -> bool:
    path = list(error.schema_path)
    return len(path) >= 3 and path[0] == "$defs" and path[-1] in ("minItems", "maxItems")


def _size_phrase(error: Any) -> str:
    """The words for a list of the wrong size: its schema's x-message, else the limit."""
    name, *keys, keyword = list(error.schema_path)[1:]
    schema = load_definition(name)
    for key in keys:
        schema = schema[key]
    limit = schema.get(keyword)
    return schema.get("x-message") or f"must have {'at most' if keyword == 'maxItems' else 'at least'} {limit} item(s)"


def _fast_check(checks: Mapping[str, Checker]) -> type:
    class Check:
        """`x-check` for jsonschema-rs: the value fails when the check finds anything."""

        def __init__(self, _parent: Any, name: str, _path: Any):
            self.check = checks[name]

        def validate(self, instance: Any) -> None:
            if self.check(instance):
                raise ValueError("refused by a check")

    return Check


def _check(checks: Mapping[str, Checker]) -> Callable[..., Iterator[ValidationError]]:
    def check(_validator: Any, name: str, instance: Any, _schema: Any) -> Iterator[ValidationError]:
        for problem in checks[name](instance):
            yield ValidationError(problem["message"], path=parts(problem.get("pointer", "")))

    return check


def schema_errors(validator: Draft202012Validator, instance: object) -> list[Found]:
    """(instance path, problem code, phrase) for each error, in schema order. Each value is
    named once, by the first thing that finds it wrong, and nothing inside it after that
    (a check and a keyword finding the same fault, or a field too short and off-pattern)."""
    found: list[Found] = []
    named: set[str] = set()
    for error in (leaf for top in validator.iter_errors(instance) for leaf in _leaves(top)):
        for path, code, phrase in _explain(error):
            at = pointer(path)
            if at in named or any(at.startswith(n + "/") for n in named):
                continue
            named.add(at)
            found.append((path, code, phrase))
    return found


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The errors that say what is wrong: an anyOf / oneOf error stands for those of the
    branch the value came closest to (`_closest_branch`), each looked into again."""
    if not error.context:
        yield error
        return
    for sub in _closest_branch(error):
        yield from _leaves(sub)


def _closest_branch(error: ValidationError) -> list[ValidationError]:
    """The errors of the anyOf / oneOf branch with the fewest complaints about the value
    itself (a missing or unexpected key, another type): the branch whose shape it took, so
    they say what is wrong inside it (the `field` of a field rule) rather than that it lacks
    the keys of another kind of rule. Ties go to the branch of jsonschema's most relevant
    error (its `relevance`, which best_match ranks by before descending into contexts)."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    about_itself = {branch: sum(not sub.path for sub in subs) for branch, subs in branches.items()}
    fewest = min(about_itself.values())
    best = max((sub for branch, subs in branches.items() if about_itself[branch] == fewest for sub in subs),
               key=relevance)
    return branches[best.relative_schema_path[0]]


def _explain(error: ValidationError) -> list[Found]:
    path = list(error.absolute_path)
    value, keyword, arg = error.instance, error.validator, error.validator_value
    if keyword == "required" and isinstance(value, Mapping):
        props = error.schema.get("properties", {})
        return [([*path, name], "missing_field", _required(props.get(name))) for name in arg if name not in value]
    if keyword == "additionalProperties" and arg is False and isinstance(value, Mapping):
        props = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in value if k not in props and not any(re.search(p, k) for p in patterns)]
        return [([*path, k], "unknown_field", _unknown(error.schema)) for k in extra]
    return [(path, "invalid_field", _phrase(error))]


def _required(schema: Any) -> str:
    said = schema.get("x-message") if isinstance(schema, Mapping) else None
    return f"is required: {said}" if said else "is required"


def _unknown(schema: Mapping[str, Any]) -> str:
    kind = schema.get("x-kind")
    if not kind:
        return "is not a field that belongs here"
    fields = [name for name, spec in schema.get("properties", {}).items()
              if not (isinstance(spec, Mapping) and spec.get("readOnly"))]
    article = "an" if kind[0] in "aeiou" else "a"
    return f"is not {article} {kind} field (expected {', '.join(fields)})"


def _phrase(error: ValidationError) -> str:
    """What the value must be, e.g. 'must be one of eq, ne'."""
    value, keyword, arg = error.instance, error.validator, error.validator_value
    if keyword == CHECK:  # a check may leave the words to the schema's x-message
        return error.message or error.schema.get("x-message") or "is not valid"
    if isinstance(error.schema, Mapping) and error.schema.get("x-message"):
        return error.schema["x-message"]
    if keyword == "format" and isinstance(error.cause, ValueError) and str(error.cause):
        return str(error.cause)  # a format of ours says what is wrong
    got = f" (got {show(value)})"
    if keyword == "type":
        kinds = [arg] if isinstance(arg, str) else list(arg)
        return "must be " + " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
    if keyword == "enum":
        return "must be one of " + ", ".join(str(v) for v in arg) + got
    if keyword == "const":
        return f"must be {show(arg)}{got}"
    if keyword == "pattern":
        hint = error.schema.get("x-pattern-hint")
        return (f"must be {hint}" if hint else f"must match the pattern {arg}") + got
    if keyword == "minLength":
        return "must not be empty" if arg == 1 else f"must be at least {arg} characters long"
    if keyword == "maxLength":
        return f"must be at most {arg} characters long"
    simple = {
        "minimum": "must be at least {}",
        "maximum": "must be at most {}",
        "exclusiveMinimum": "must be more than {}",
        "exclusiveMaximum": "must be less than {}",
        "multipleOf": "must be a multiple of {}",
        "minItems": "must have at least {} item(s)",
        "maxItems": "must have at most {} item(s)",
        "minProperties": "must have at least {} field(s)",
        "maxProperties": "must have at most {} field(s)",
        "format": "must be a valid {}",
    }
    if keyword in simple:
        return simple[keyword].format(arg) + (got if keyword not in ("minItems", "maxItems") else "")
    if keyword == "uniqueItems":
        return "must not contain the same item twice"
    if keyword.startswith("x-"):  # a keyword of ours (e.g. bounded durations) words its own message
        return error.message
    return f"is not valid: {error.message}"


def show(value: object) -> str:
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
