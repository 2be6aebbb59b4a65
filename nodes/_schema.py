"""Deprecated path of engine.sdk.schema (`ref`, `node_ref`, `DURATION`): kept for one
release so plugins that imported it keep loading."""

import warnings
from typing import Any

from engine.sdk import schema as _moved

warnings.warn("nodes._schema is deprecated and will be removed in the next release: import from engine.sdk",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
