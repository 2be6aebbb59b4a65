"""Message templates: merge tags rendered in a Jinja2 sandbox.

Merge tags a template may use (see `context_for`):

    {{ profile.external_id }}   {{ profile.email }}   {{ profile.phone }}
    {{ profile.timezone }}      {{ profile.points }}
    {{ profile.attributes.first_name }}      any attribute of the customer
    {{ event.name }}  {{ event.properties.order_id }}   the event that started the journey
    {{ campaign.id }} {{ campaign.name }}

A missing value (absent, null or "") never fails a send: it renders the template's declared
default (`Template.defaults`, keyed by dotted path such as "profile.attributes.first_name"),
else the inline default `{{ profile.attributes.first_name | default("there") }}`, else "".
Jinja's statements work (`if`, `for`, `set`, `macro`) with a safe subset of its filters.

Template authors are not trusted. The sandbox reaches nothing but the plain data we pass in:
no Python internals (`__class__`, `__globals__`), no methods (`"x".upper()`: use `| upper`),
no globals (`range`, `lipsum`, `cycler`, `self`, `config`), no other files (no loader, and
include / import / extends are rejected at save time). Each render is capped in time, output
size and loop iterations, so a template cannot hang a dispatcher or exhaust its memory.
Every failure is an `engine.core.errors.TemplateError` naming the field (and line, when known).

The `html` field is autoescaped (a customer named `<script>` arrives as `&lt;script&gt;`);
every other field is plain text: the channel that puts it into markup escapes it there.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
import types
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, cast

from jinja2 import (
    ChainableUndefined,
    Template,
    TemplateSyntaxError,
    meta,
    nodes,
    pass_environment,
    pass_eval_context,
)
from jinja2 import filters as jfilters
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.core.errors import InvalidInput, TemplateError
from engine.core.pointers import pointer, token

#: the longest template source a field may hold (a large HTML email is ~100 KB)
MAX_SOURCE_CHARS = 200_000
#: the longest a rendered field (or any string built while rendering) may be
MAX_OUTPUT_CHARS = 500_000
#: all the text one field's render may build (output, intermediate strings, literal text of
#: loop and macro bodies per pass), and the largest list or object it may build (measured
#: as its printed size): bounds memory however the template nests loops, macros and lists
MAX_WORK_CHARS = 10 * MAX_OUTPUT_CHARS
#: loop iterations plus macro calls per field
MAX_STEPS = 10_000
#: CPU time one `Renderer.render` may take, all fields together: the rendering thread's own
#: time, so a busy machine (or a thread waiting for the GIL) never fails a template that the
#: other limits would let through
MAX_RENDER_SECONDS = 1.0
#: integers beyond this size make arithmetic slow enough to hang a worker
MAX_INT_BITS = 4096
#: printf-style widths and precisions ("%10s"): beyond this they only inflate output
MAX_FORMAT_WIDTH = 200
#: the names a template may start a merge tag with
ROOTS = ("profile", "event", "campaign")
#: profile columns in the merge context (with `attributes`)
PROFILE_FIELDS = ("external_id", "email", "phone", "timezone", "points")

#: per channel: the content fields and their kind (text/html: a template string; pairs: an
#: object of template strings; json: any JSON value whose strings are templates)
CHANNEL_FIELDS: dict[str, dict[str, str]] = {
    "email": {"subject": "text", "preheader": "text", "html": "html", "text": "text", "from_name": "text"},
    "sms": {"body": "text"},
    "push": {"title": "text", "body": "text", "image": "text", "data": "pairs"},
    "webapi": {"body": "json"},
    "loyalty": {"amount": "json", "expires_in": "text", "legal_entity": "text", "description": "text"},
}

#: Jinja filters that cannot inflate output beyond a small factor or reach anything unsafe
SAFE_FILTERS = (
    "abs", "capitalize", "count", "dictsort", "e", "escape", "filesizeformat", "first", "float",
    "forceescape", "groupby", "int", "items", "last", "length", "list", "lower", "map", "max", "min",
    "random", "reject", "rejectattr", "reverse", "safe", "select", "selectattr", "sort",
    "string", "striptags", "title", "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
    "xmlattr",
)

_FORMAT_SPEC = re.compile(r"%%|%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_LOADING_TAGS = {nodes.Extends: "extends", nodes.Include: "include", nodes.Import: "import",
                 nodes.FromImport: "from ... import"}


# --------------------------------------------------------------------------- limits


class _LimitExceeded(SecurityError):
    """A render went over one of the caps (time, output, iterations)."""


def _too_long() -> _LimitExceeded:
    return _LimitExceeded(f"output longer than {MAX_OUTPUT_CHARS} characters")


@dataclass
class _Budget:
    """What one render may still spend. Lives in a context variable so the sandbox hooks
    (filters, calls, operators) reach it without passing it through the template."""

    deadline: float
    steps: int = 0
    work: int = 0
    #: id -> (container, printed size) of the lists and objects met, so nesting references
    #: (`[a, a]`, then `[b, b]`, ...) is measured in linear time; the container is kept so
    #: its id cannot be reused within the render
    sizes: dict[int, tuple[Any, int]] = dataclasses.field(default_factory=dict)

    def check_time(self) -> None:
        if time.thread_time() > self.deadline:
            raise _LimitExceeded(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")

    def step(self, chars: int) -> None:
        """One loop iteration or macro call, whose body holds `chars` of literal text."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _LimitExceeded(f"more than {MAX_STEPS} loop iterations and macro calls")
        self.charge(chars)

    def charge(self, chars: int) -> None:
        self.work += chars
        if self.work > MAX_WORK_CHARS:
            raise _LimitExceeded(f"rendering built more than {MAX_WORK_CHARS} characters of text")
        self.check_time()

    def measure(self, value: Any) -> int:
        """The printed size of a value, refusing lists and objects larger than the work cap
        (`str()` or comparing them would otherwise run for minutes where no hook can stop it)."""
        if isinstance(value, str):
            return len(value) + 2
        if not isinstance(value, (list, tuple, dict)):
            return value.bit_length() // 3 + 2 if _is_int(value) else 8
        known = self.sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        size = 2
        for item in (value if not isinstance(value, dict) else [*value.keys(), *value.values()]):
            size += self.measure(item) + 2
            if size > MAX_WORK_CHARS:
                raise _LimitExceeded(f"a list or object larger than {MAX_WORK_CHARS} characters")
        self.sizes[id(value)] = (value, size)
        return size

    def start_field(self) -> None:
        self.steps = self.work = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _check_time() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.check_time()


def _checked(value: Any) -> Any:
    """Any value a template builds (operators, filters, `~`, literals, slices): a string or
    list over the output cap stops the render; its length is charged to the work cap; a
    list or object is measured. Outside a render (compile-time folding) only length counts."""
    sized = isinstance(value, (str, list, tuple, dict))
    if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
        raise _too_long()
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(len(value) if sized else 0)
        if isinstance(value, (list, tuple, dict)):
            budget.measure(value)
    return value


def _measured(values: Iterable[Any]) -> None:
    """Measure the lists and objects among `values` before anything stringifies or compares
    them: Python does both in C, where neither the clock nor the caps can interrupt it."""
    for value in values:
        if isinstance(value, (list, tuple, dict)):
            _checked(value)


def _fits(size: int) -> None:
    """Refuse an operation before it allocates a result over the cap."""
    if size > MAX_OUTPUT_CHARS:
        raise _too_long()


def _check_format(spec: str) -> None:
    """printf-style formatting ("%.2f" % price) is fine; "%999999999s" is an output bomb."""
    for match in _FORMAT_SPEC.finditer(spec):
        for number in match.groups():
            if number == "*" or (number is not None and int(number) > MAX_FORMAT_WIDTH):
                raise SecurityError(f"format widths above {MAX_FORMAT_WIDTH} are not allowed")


# --------------------------------------------------------------------------- undefined values


class _Blank(ChainableUndefined):
    """A missing merge value: renders "", chains (`event.properties.a.b`), and takes part
    in arithmetic and comparisons as a blank instead of raising, so missing data never
    fails a send."""

    __slots__ = ()

    def _blank(self, *args: Any, **kwargs: Any) -> _Blank:
        return self

    # Jinja's Undefined declares these as raising (-> NoReturn); a blank answers instead
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __div__ = __rdiv__ = _blank  # type: ignore[assignment]
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _blank  # type: ignore[assignment]
    __pos__ = __neg__ = __call__ = __getitem__ = __pow__ = __rpow__ = _blank  # type: ignore[assignment]
    __lt__ = __le__ = __gt__ = __ge__ = _blank  # type: ignore[assignment]

    def __int__(self) -> int:  # type: ignore[override]
        return 0

    def __float__(self) -> float:  # type: ignore[override]
        return 0.0


def _is_blank(value: Any) -> bool:
    return isinstance(value, Undefined) or value is None or value == ""


# --------------------------------------------------------------------------- filters


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """`| default(x)`: also for null and "", like declared defaults (an imported blank name
    should still get "there")."""
    return default_value if _is_blank(value) or (boolean and not value) else value


@pass_environment
def _attr(environment: _Sandbox, obj: Any, name: str) -> Any:
    """`| attr(name)` through the sandbox's own lookup (Jinja's reads Python attributes)."""
    return environment.getattr(obj, name)


def _center(value: Any, width: int = 80) -> str:
    _fits(int(width))
    return jfilters.do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    _fits(len(text) + (text.count("\n") + 1) * (len(width) if isinstance(width, str) else int(width)))
    return jfilters.do_indent(text, width, first, blank)


@pass_environment
def _wordwrap(environment: _Sandbox, s: Any, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    text, glue = str(s), wrapstring if wrapstring is not None else "\n"
    _fits(len(text) + (len(text) // max(int(width), 1) + text.count("\n") + 1) * len(str(glue)))
    return jfilters.do_wordwrap(environment, text, width, break_long_words, wrapstring, break_on_hyphens)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value))
    return jfilters.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx: Any, value: Any, d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    if attribute is not None:
        getter = jfilters.make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in items]
    size = 0
    for item in items:
        size += len(str(item)) + len(str(d))
        _fits(size)
        _check_time()
    return jfilters.sync_do_join(eval_ctx, items, d)


@pass_environment
def _sum(environment: _Sandbox, iterable: Any, attribute: str | int | None = None, start: Any = 0) -> Any:
    """Jinja's `sum`, one checked addition at a time (summing lists is quadratic)."""
    getter = jfilters.make_attrgetter(environment, attribute) if attribute is not None else None
    total = start
    for item in iterable:
        total = _checked(total + (getter(item) if getter else item))
    return total


def _round(value: Any, precision: int = 0, method: Literal["common", "ceil", "floor"] = "common") -> float:
    if not -20 <= int(precision) <= 20:  # round(5, -10**9) computes 10**10**9
        raise SecurityError("round precision must be between -20 and 20")
    return jfilters.do_round(value, precision, method)  # Jinja refuses another method (FilterArgumentError)


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_text, new_text = str(s), str(old), str(new)
    found = text.count(old_text) if old_text else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    _fits(len(text) + found * (len(new_text) - len(old_text)))
    return jfilters.do_replace(eval_ctx, s, old, new, count)


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if not 1 <= int(linecount) <= MAX_STEPS:
        raise SecurityError(f"batch size must be between 1 and {MAX_STEPS}")
    return (_checked(part) for part in jfilters.do_batch(value, linecount, fill_with))


def _slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if not 1 <= int(slices) <= MAX_STEPS:
        raise SecurityError(f"slices must be between 1 and {MAX_STEPS}")
    return (_checked(part) for part in jfilters.sync_do_slice(value, slices, fill_with))


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> str:
    if indent is not None and not 0 <= int(indent) <= 8:
        raise SecurityError("tojson indent must be between 0 and 8")
    return jfilters.do_tojson(eval_ctx, value, indent)


def _charge(chars: int) -> str:
    """Inserted at the top of every loop and macro body (never written by authors): counts
    the iteration, its literal text, and checks the clock."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.step(chars)
    return ""


_GUARDED: dict[str, Callable[..., Any]] = {
    "default": _default, "d": _default, "attr": _attr, "center": _center, "indent": _indent,
    "wordwrap": _wordwrap, "format": _format, "join": _join, "replace": _replace, "batch": _batch,
    "slice": _slice, "tojson": _tojson, "sum": _sum, "round": _round,
}


def _checked_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every filter's arguments are measured and its result checked (output cap, work cap,
    clock). `wraps` keeps Jinja's pass_context/pass_environment marker."""

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _measured((*args, *kwargs.values()))
        return _checked(fn(*args, **kwargs))

    return checked


def _filters(defaults: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    chosen = {name: defaults[name] for name in SAFE_FILTERS} | _GUARDED
    return {**{name: _checked_filter(fn) for name, fn in chosen.items()}, "_charge": _charge}


# --------------------------------------------------------------------------- the sandbox


class _CodeGenerator(CodeGenerator):
    """`a ~ b` and `[...]`, `(...)`, `{...}` literals build values outside the operator
    hooks: check what they build."""

    def _checked_visit(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.checked(")
        visit(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_join((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("), context.eval_ctx.autoescape)")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked_visit(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked_visit(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target: `{% for key, value in ... %}`
            super().visit_Tuple(node, frame)
        else:
            self._checked_visit(super().visit_Tuple, node, frame)


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}` output: null prints as "" (not "None"), and what is printed is
    charged, so a macro buffering output inside a loop is bounded too."""
    if value is None:
        return ""
    _measured((value,))
    text = value if isinstance(value, str) else str(value)
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(len(text))
    return text


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, narrowed: lookups only into the mappings we pass (and
    the loop object), calls only of macros and `loop`, no globals, no loader, operators
    that cannot build huge strings or numbers, and the budget checked on every call."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, html: bool) -> None:
        super().__init__(autoescape=html, undefined=_Blank, finalize=_finalize, optimized=False,
                         keep_trailing_newline=True, loader=None, cache_size=0, auto_reload=False)
        self.globals.clear()
        self.filters = _filters(self.filters)

    # -- lookups -------------------------------------------------------------------------
    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._lookup(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._lookup(obj, argument)

    def _lookup(self, obj: Any, key: Any) -> Any:
        if isinstance(key, str) and key.startswith("_"):
            raise self._unsafe(obj, key)
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            return obj[key] if _has_key(obj, key) else self.undefined(obj=obj, name=key)
        if isinstance(obj, (list, tuple, str)) and isinstance(key, (int, slice)) and not isinstance(key, bool):
            return _index(obj, key, self.undefined)
        if isinstance(key, str) and _is_field(obj, key):
            return getattr(obj, key)
        if isinstance(key, str) and hasattr(obj, key):
            raise self._unsafe(obj, key)
        return self.undefined(obj=obj, name=key)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return _is_field(obj, attr)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise self._unsafe(obj, attribute)

    @staticmethod
    def _unsafe(obj: Any, attribute: str) -> SecurityError:
        return SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    # -- calls and operators -------------------------------------------------------------
    def is_safe_callable(self, obj: Any) -> bool:
        return isinstance(obj, (Macro, LoopContext, Undefined)) or (
            isinstance(obj, types.MethodType) and isinstance(obj.__self__, LoopContext))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"a {type(__obj).__name__!r} object cannot be called in a template")
        _checked(args)  # a macro's `varargs`: measured as one tuple
        _checked(kwargs)
        return __context.call(__obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _measured((left, right))
        _check_binop(operator, left, right)
        return _checked(self.binop_table[operator](left, right))

    def checked(self, value: Any) -> Any:
        return _checked(value)

    def checked_join(self, parts: tuple[Any, ...], autoescape: bool) -> str:
        """`a ~ b ~ c`, as Jinja joins it, with the parts measured and the result checked."""
        _measured(parts)
        return _checked(markup_join(parts) if autoescape else str_join(parts))


def _has_key(obj: Mapping[Any, Any], key: Any) -> bool:
    try:
        return key in obj
    except TypeError:  # an unhashable key
        return False


def _index(obj: list[Any] | tuple[Any, ...] | str, key: int | slice, undefined: Callable[..., Any]) -> Any:
    try:
        found = obj[key]
    except (IndexError, TypeError, ValueError):
        return undefined(obj=obj, name=key)
    return _checked(found) if isinstance(key, slice) else found


def _is_field(obj: Any, name: str) -> bool:
    """The only non-mapping attributes a template reads: the loop's (`loop.index`) and the
    fields of the tuples `groupby` makes (`group.grouper`)."""
    if name.startswith("_"):
        return False
    if isinstance(obj, LoopContext):
        return hasattr(obj, name)
    return isinstance(obj, tuple) and name in getattr(type(obj), "_fields", ())


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before computing, what would allocate a huge string or number."""
    _check_time()
    if operator == "%" and isinstance(left, str):
        _check_format(left)
    elif operator == "*":
        _check_product(left, right)
    elif (operator == "**" and _is_int(left) and _is_int(right) and right > 0
          and max(abs(left).bit_length(), 1) * right > MAX_INT_BITS):
        raise SecurityError("number too large")


def _check_product(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and _is_int(times):
            _fits(len(seq) * times)
    if _is_int(left) and _is_int(right) and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
        raise SecurityError("number too large")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ENVIRONMENTS = {True: _Sandbox(html=True), False: _Sandbox(html=False)}


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


# --------------------------------------------------------------------------- the context


def _plain(value: Any, depth: int = 0) -> Any:
    """A deep copy made of dicts, lists, strings, numbers, booleans and null only: whatever
    the caller passes, the template sees no object with methods, and cannot see our copies
    change (defaults are filled into it)."""
    if depth > 32:
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a Markup value would skip escaping
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _with_defaults(context: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Fill declared defaults ("profile.attributes.first_name": "there") where the value is
    absent, null or ""."""
    for path, value in defaults.items():
        *parents, last = str(path).split(".")
        target: Any = context
        for key in parents:
            if not isinstance(target, dict):
                break
            if _is_blank(target.get(key)):
                target[key] = {}
            target = target[key]
        if isinstance(target, dict) and _is_blank(target.get(last)):
            target[last] = _plain(value)
    return context


def _read(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def context_for(profile: Mapping[str, Any] | Any, event: Mapping[str, Any] | None = None,
                campaign: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The merge context for one recipient.

    profile: a mapping (or a Profile row) with external_id, email, phone, timezone, points
    and attributes. event: the trigger, {"name", "properties"} (an enrollment's stored
    context {"event", "properties"} works too), or None. campaign: {"id", "name"} or None.
    Result: {"profile": {...fields, "attributes": {...}}, "event": {"name", "properties"} or
    {}, "campaign": {"id", "name"} or {}}.
    """
    fields = {name: _plain(_read(profile, name)) for name in PROFILE_FIELDS}
    attributes = _read(profile, "attributes")
    fields["attributes"] = _plain(attributes) if isinstance(attributes, Mapping) else {}
    return {"profile": fields, "event": _event_context(event), "campaign": _campaign_context(campaign)}


def _event_context(event: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(event, Mapping) or not event:
        return {}
    properties = event.get("properties")
    return {"name": _plain(event.get("name", event.get("event"))),
            "properties": _plain(properties) if isinstance(properties, Mapping) else {}}


def _campaign_context(campaign: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(campaign, Mapping) or not campaign:
        return {}
    return {"id": _plain(campaign.get("id")), "name": _plain(campaign.get("name"))}


# --------------------------------------------------------------------------- merge tags


_STATIC_TAGS = (
    ("profile.email", "Email", "profile"), ("profile.phone", "Phone", "profile"),
    ("profile.external_id", "External ID", "profile"), ("profile.timezone", "Time zone", "profile"),
    ("profile.points", "Points", "profile"), ("event.name", "Event name", "event"),
    ("campaign.name", "Campaign name", "campaign"), ("campaign.id", "Campaign ID", "campaign"),
)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def merge_tags(channel: str, attributes: Iterable[str] = (),
               event_properties: Iterable[str] = ()) -> list[dict[str, str]]:
    """The tags the canvas offers for insertion: [{"label", "tag", "path", "group"}]. The
    fixed profile, event and campaign fields, plus the customer attribute and event property
    names the caller knows of (names starting with "_" are skipped: templates cannot read them)."""
    if channel not in CHANNEL_FIELDS:
        raise InvalidInput.field("channel", f"must be one of {', '.join(CHANNEL_FIELDS)}")
    tags = [_tag(path, label, group) for path, label, group in _STATIC_TAGS]
    tags += [_tag(_path("profile.attributes", name), name, "attributes") for name in _names(attributes)]
    tags += [_tag(_path("event.properties", name), name, "event") for name in _names(event_properties)]
    return tags


def _names(names: Iterable[str]) -> list[str]:
    return sorted({n for n in names if isinstance(n, str) and n and not n.startswith("_")})


def _path(prefix: str, name: str) -> str:
    """`prefix.name`, or `prefix["first name"]` when the name is not an identifier."""
    return f"{prefix}.{name}" if _IDENTIFIER.match(name) else f"{prefix}[{_quote(name)}]"


def _quote(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _tag(path: str, label: str, group: str) -> dict[str, str]:
    return {"label": label, "tag": "{{ " + path + " }}", "path": path, "group": group}


# --------------------------------------------------------------------------- validation


def validate_content(channel: object, content: Any) -> None:
    """Check content before it is stored: InvalidInput for a missing, unknown or mistyped
    field, TemplateError (every syntax error and forbidden construct, with field and line)."""
    if channel not in CHANNEL_FIELDS:
        raise InvalidInput.field("/channel", f"must be one of {', '.join(CHANNEL_FIELDS)}")
    if not isinstance(content, Mapping):
        raise InvalidInput.field("/content", "must be an object")
    kinds = CHANNEL_FIELDS[channel]
    for key, value in content.items():
        _check_field(channel, key, kinds.get(key), value)
    _check_required(channel, content)
    Renderer(content)


def _check_field(channel: str, key: Any, kind: str | None, value: Any) -> None:
    pointer = _pointer((key,))
    if kind is None:
        raise InvalidInput.field(pointer, f"is not a {channel} field (expected {', '.join(CHANNEL_FIELDS[channel])})")
    if kind in ("text", "html") and value is not None and not isinstance(value, str):
        raise InvalidInput.field(pointer, "must be a string")
    if kind == "pairs" and value is not None:
        if not isinstance(value, Mapping):
            raise InvalidInput.field(pointer, "must be an object of strings")
        for name, item in value.items():
            if not isinstance(item, str):
                raise InvalidInput.field(_pointer((key, name)), "must be a string")


def _check_required(channel: str, content: Mapping[str, Any]) -> None:
    def given(key: str) -> bool:
        value = content.get(key)
        return isinstance(value, str) and value.strip() != ""

    if channel == "email" and not given("subject"):
        raise InvalidInput.field("/content/subject", "is required", "missing_field")
    if channel == "email" and not (given("html") or given("text")):
        raise InvalidInput.field("/content/html", "is required (or text)", "missing_field")
    if channel == "sms" and not given("body"):
        raise InvalidInput.field("/content/body", "is required", "missing_field")
    if channel == "push" and not (given("title") or given("body")):
        raise InvalidInput.field("/content/title", "is required (or body)", "missing_field")
    if channel == "webapi" and content.get("body") is None:
        raise InvalidInput.field("/content/body", "is required", "missing_field")
    if channel == "loyalty" and content.get("amount") in (None, ""):
        raise InvalidInput.field("/content/amount", "is required", "missing_field")


def validate_defaults(defaults: Any) -> None:
    """Declared defaults: {"profile.attributes.first_name": "there"}; each key a dotted path
    under profile, event or campaign, each value a string, number or boolean."""
    if not isinstance(defaults, Mapping):
        raise InvalidInput.field("/defaults", "must be an object")
    for key, value in defaults.items():
        pointer = "/defaults/" + token(key)
        parts = str(key).split(".")
        if len(parts) < 2 or parts[0] not in ROOTS or any(not p or p.startswith("_") for p in parts):
            raise InvalidInput.field(pointer, f"must be a dotted path under {', '.join(ROOTS)} "
                                    "(e.g. profile.attributes.first_name)")
        if value is None or not isinstance(value, (str, int, float)) or (isinstance(value, str) and len(value) > 1000):
            raise InvalidInput.field(pointer, "must be a string (up to 1000 characters), number or boolean")

