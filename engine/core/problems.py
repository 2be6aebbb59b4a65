"""A problem with a campaign document, as validation and node types' `check` report it:
a module of its own so the registry (which declares `check`) and validation (which runs it)
both name it without importing each other."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth knowing) about a campaign document.

    `pointer` is the JSON pointer (RFC 6901) of the offending value so the canvas can
    highlight the field; `node_id` names the node to highlight when there is one.
    """

    code: str
    message: str
    pointer: str
    node_id: str | None = None
    severity: str = ERROR

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
