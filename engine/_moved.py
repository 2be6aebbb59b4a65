"""Old import paths kept for one release: a module that moved leaves behind a stub whose
attributes are the new module's, with a DeprecationWarning naming where to import from."""

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved(old: str, new: str, advice: str = "import from engine.sdk") -> Callable[[str], Any]:
    """Warn that `old` is deprecated (at the importer's line) and return the `__getattr__`
    that serves the stub's attributes from `new`."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release: {advice}",
                  DeprecationWarning, stacklevel=3)
    target = importlib.import_module(new)

    def attribute(name: str) -> Any:
        return getattr(target, name)

    return attribute
