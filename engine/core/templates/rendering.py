"""Rendering a message's content for one recipient: every field of the content, within the
render's limits; `Renderer` compiles once and renders many."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from jinja2 import (
    Template,
)
from jinja2.exceptions import SecurityError

from engine.core.errors import TemplateError
from engine.core.pointers import pointer
from engine.core.templates.compiling import _compile, _error, _filename, _problem
from engine.core.templates.context import _plain, _with_defaults
from engine.core.templates.limits import (
    _BUDGET,
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    MAX_SOURCE_CHARS,
    _Budget,
    _LimitExceeded,
    _too_long,
)

# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Field:
    """One template string of the content; `template` is None for plain text."""

    label: str
    pointer: str
    template: Template | None
    text: str


def _is_literal(source: str) -> bool:
    return "{{" not in source and "{%" not in source and "{#" not in source


def _label(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def _pointer(path: Iterable[Any]) -> str:
    """The pointer of a content field in the request body."""
    return pointer(("content", *path))


def _compile_tree(value: Any, path: tuple[Any, ...], problems: list[dict[str, Any]]) -> Any:
    """The content's shape with each string replaced by its compiled field."""
    if isinstance(value, str):
        label, pointer = _label(path), _pointer(path)
        if _is_literal(value) and len(value) <= MAX_SOURCE_CHARS:
            return _Field(label, pointer, None, value)
        try:
            return _Field(label, pointer, _compile(value, path == ("html",), label, pointer), value)
        except TemplateError as exc:
            problems.extend(exc.details)
            return None
    if isinstance(value, Mapping):
        return {key: _compile_tree(item, (*path, key), problems) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_compile_tree(item, (*path, n), problems) for n, item in enumerate(value)]
    return value


def _render_tree(value: Any, context: dict[str, Any], budget: _Budget) -> Any:
    if isinstance(value, _Field):
        return _render_field(value, context, budget)
    if isinstance(value, dict):
        return {key: _render_tree(item, context, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_tree(item, context, budget) for item in value]
    return value


def _render_field(field: _Field, context: dict[str, Any], budget: _Budget) -> str:
    """Render into a bounded buffer: the output cap and the clock are checked between chunks
    (the template's own hooks check them inside loops, macros and filters)."""
    if field.template is None:
        return field.text
    budget.start_field()
    parts: list[str] = []
    size = 0
    chunks = cast("Generator[str, None, None]", field.template.generate(context))  # closed below
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise _too_long()
            budget.check_time()
            parts.append(chunk)
    except Exception as exc:  # noqa: BLE001 - whatever a template does wrong is a TemplateError
        raise _render_error(field, exc) from None
    finally:
        chunks.close()
    return str("".join(parts))


def _render_error(field: _Field, exc: BaseException) -> TemplateError:
    if isinstance(exc, RecursionError):
        message = "macros or loops nest too deeply (recursion)"
    elif isinstance(exc, SecurityError):
        message = str(exc).rstrip(".")
    else:
        message = f"{type(exc).__name__}: {exc}"
    code = ("limit" if isinstance(exc, (_LimitExceeded, RecursionError))
            else "unsafe" if isinstance(exc, SecurityError) else "error")
    return _error([_problem(field.label, field.pointer, code, message, _line_of(exc, _filename(field.label)))])


def _line_of(exc: BaseException, filename: str) -> int | None:
    """The template line a runtime error happened on (Jinja rewrites its traceback so the
    template's frames carry template line numbers)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class Renderer:
    """A message's content compiled once, rendered for many recipients.

    Every string of `content` is a template (email: subject, preheader, html, text; sms:
    body; push: title, body, image and the values of data; webapi: every string anywhere in
    body); `render` returns the same shape with the strings rendered. Build one per batch:
    compiling is the slow part, and sources are cached, so equal content compiles once.
    Raises TemplateError (all problems, each with field and line) when content is invalid.
    """

    def __init__(self, content: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> None:
        problems: list[dict[str, Any]] = []
        self._tree = _compile_tree(dict(content), (), problems)
        if problems:
            raise _error(problems)
        self._defaults = dict(defaults or {})

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The content for one recipient (`context` as made by `context_for`). Missing values
        render their declared default or ""; an unsafe or runaway template raises TemplateError."""
        data = _with_defaults(_plain(context), self._defaults)
        budget = _Budget(deadline=time.thread_time() + MAX_RENDER_SECONDS)
        token = _BUDGET.set(budget)
        try:
            return _render_tree(self._tree, data, budget)
        finally:
            _BUDGET.reset(token)


def render(content: Mapping[str, Any], context: Mapping[str, Any],
           defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One-off rendering (previews). Sending code keeps a Renderer per batch instead."""
    return Renderer(content, defaults).render(context)
