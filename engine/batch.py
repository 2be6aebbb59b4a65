"""Deprecated path of engine.core.batch: plugins import engine.sdk (and engine.sdk.data for
the tables). Kept for one release so plugins written against 0.1 keep loading."""

import warnings
from typing import Any

from engine.core import batch as _moved

warnings.warn("engine.batch is deprecated and will be removed in the next release: import from engine.sdk",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
