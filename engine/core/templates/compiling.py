"""Compiling a template field once: syntax errors, loading tags, private names, unknown
filters and names found at save time, each naming the field and line."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, cast

from jinja2 import (
    Template,
    TemplateSyntaxError,
    meta,
    nodes,
)

from engine.core.errors import TemplateError
from engine.core.templates.context import ROOTS
from engine.core.templates.limits import MAX_SOURCE_CHARS
from engine.core.templates.sandbox import _ENVIRONMENTS, _LOADING_TAGS, _Sandbox

# --------------------------------------------------------------------------- compiling


def _filename(label: str) -> str:
    """The code file name of a compiled field: how a runtime error finds its line."""
    return f"<template {label}>"


def _problem(label: str, pointer: str, code: str, message: str, line: int | None = None) -> dict[str, Any]:
    problem: dict[str, Any] = {"pointer": pointer, "field": label, "code": code, "message": message}
    if line is not None:
        problem["line"] = line
    return problem


def _error(problems: list[dict[str, Any]]) -> TemplateError:
    first = problems[0]
    message = f"{first['field']}: {first['message']}"
    if "line" in first:
        message += f" (line {first['line']})"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problems)"
    return TemplateError(message, problems)


@functools.lru_cache(maxsize=4096)
def _compile(source: str, html: bool, label: str, pointer: str) -> Template:
    """Compiled once per source: every renderer of the same content shares it."""
    return _build(source, html, label, pointer)


def _build(source: str, html: bool, label: str, pointer: str) -> Template:
    if len(source) > MAX_SOURCE_CHARS:
        raise _error([_problem(label, pointer, "too_long", f"longer than {MAX_SOURCE_CHARS} characters")])
    env = _ENVIRONMENTS[html]
    try:
        ast = env.parse(source)
        if problems := [_problem(label, pointer, code, message, line) for line, code, message in _scan(ast, env)]:
            raise _error(problems)
        _add_charges(ast, env)
        code = env.compile(ast, name=label, filename=_filename(label))
    except TemplateSyntaxError as exc:
        raise _error([_problem(label, pointer, "syntax_error", exc.message or "syntax error", exc.lineno)]) from None
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _scan(ast: nodes.Template, env: _Sandbox) -> list[tuple[int, str, str]]:
    """What the sandbox would refuse anyway, found at save time with its line."""
    found = [*_loading(ast), *_private_names(ast), *_unknown_filters(ast, env)]
    if not found:
        found = _unknown_names(ast)
    return sorted(found, key=lambda p: p[0])


def _loading(ast: nodes.Template) -> Iterator[tuple[int, str, str]]:
    for node in ast.find_all(tuple(_LOADING_TAGS)):
        tag = _LOADING_TAGS[type(node)]
        yield node.lineno, "not_allowed", f"{{% {tag} %}} is not allowed: templates cannot load other files"


def _private_names(ast: nodes.Template) -> Iterator[tuple[int, str, str]]:
    for node in _inner_first(ast):
        name = _static_name(node)
        if name == "self" and isinstance(node, nodes.Name):
            yield node.lineno, "unsafe", "'self' is not available in templates"
        elif name is not None and name.startswith("_") and not isinstance(node, nodes.Name):
            yield node.lineno, "unsafe", f"access to attribute {name!r}{_of_type(node)} is unsafe"


def _inner_first(node: nodes.Node) -> Iterator[nodes.Node]:
    """Every node, children before parents: in `''.__class__.__mro__` the first step is reported first."""
    for child in node.iter_child_nodes():
        yield from _inner_first(child)
    yield node


def _of_type(node: nodes.Node) -> str:
    """" of 'str' object" when the looked-up object is a literal, as the sandbox would say."""
    target = getattr(node, "node", None)
    return f" of {type(target.value).__name__!r} object" if isinstance(target, nodes.Const) else ""


def _static_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return node.name if isinstance(node, nodes.Name) else None


def _unknown_filters(ast: nodes.Template, env: _Sandbox) -> Iterator[tuple[int, str, str]]:
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        kind, known = ("filter", env.filters) if isinstance(node, nodes.Filter) else ("test", env.tests)
        if node.name.startswith("_") or node.name not in known:
            yield node.lineno, "unknown_filter", f"no {kind} named {node.name!r}"


def _unknown_names(ast: nodes.Template) -> list[tuple[int, str, str]]:
    """Top-level names other than profile/event/campaign (and the template's own variables):
    `config`, `os`, `range`, or a typo like `profle` - refused at save time."""
    unknown = meta.find_undeclared_variables(ast) - set(ROOTS)
    found = []
    for name in sorted(unknown):
        line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), 1)
        found.append((line, "unknown_merge_tag",
                      f"unknown merge tag {name!r}: merge tags start with {', '.join(ROOTS)}"))
    return found


def _add_charges(ast: nodes.Template, env: _Sandbox) -> None:
    """Put the expression `n|_charge` (n: the body's literal text length) at the top of
    each loop, macro and call-block body: every iteration or call counts against the step
    cap, its literal text against the work cap, and checks the clock, even when it outputs
    nothing."""
    for found in list(ast.find_all((nodes.For, nodes.Macro, nodes.CallBlock))):
        node = cast("nodes.For | nodes.Macro | nodes.CallBlock", found)
        chars = sum(len(data.data) for body in node.body for data in body.find_all(nodes.TemplateData))
        charge = nodes.ExprStmt(nodes.Filter(nodes.Const(chars), "_charge", [], [], None, None))
        node.body.insert(0, charge.set_lineno(node.lineno))
    ast.set_environment(env)
