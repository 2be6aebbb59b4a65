"""Limits on one render: time, output size, loop steps, integer size, format widths. A
template author is not trusted, so every render is bounded and stops with a clear error."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError

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
_FORMAT_SPEC = re.compile(r"%%|%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
