"""The Jinja2 sandbox templates run in: blank values, the safe filters (each charged
against the render's limits), and the environment and code generator that enforce them."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from jinja2 import (
    ChainableUndefined,
    nodes,
    pass_environment,
    pass_eval_context,
)
from jinja2 import filters as jfilters
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.core.templates.limits import (
    _BUDGET,
    MAX_INT_BITS,
    MAX_STEPS,
    _check_format,
    _check_time,
    _checked,
    _fits,
    _is_int,
    _measured,
)

#: Jinja filters that cannot inflate output beyond a small factor or reach anything unsafe
SAFE_FILTERS = (
    "abs", "capitalize", "count", "dictsort", "e", "escape", "filesizeformat", "first", "float",
    "forceescape", "groupby", "int", "items", "last", "length", "list", "lower", "map", "max", "min",
    "random", "reject", "rejectattr", "reverse", "safe", "select", "selectattr", "sort",
    "string", "striptags", "title", "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
    "xmlattr",
)

_LOADING_TAGS = {nodes.Extends: "extends", nodes.Include: "include", nodes.Import: "import",
                 nodes.FromImport: "from ... import"}


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




_ENVIRONMENTS = {True: _Sandbox(html=True), False: _Sandbox(html=False)}
