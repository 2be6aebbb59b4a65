"""Settings schema fragments for node types: durations, references to stored things and
to other nodes of the campaign. The canvas reads their `x-` keywords to build its form."""

from typing import Any

from engine.core.clock import LONGEST_DURATION
from engine.core.models import MAX_ID
from engine.core.validation import DURATION_MAX, DURATION_PARTS

#: the bound of every duration setting, as a duration text
LONGEST = f"{LONGEST_DURATION.days}d"
DURATION: dict[str, Any] = {"type": "string", "pattern": r"^\+?\d+(\.\d+)?(m|min|minutes|h|hours|d|days|w|weeks)$",
            "description": "e.g. 30m, 2h, 7d, 1w (at most 10 years)", DURATION_MAX: LONGEST}


def duration_parts(amount: str, unit: str) -> dict[str, Any]:
    """On an object schema: its `amount` and `unit` fields (minutes, hours, days, weeks)
    together name a duration, at most LONGEST."""
    return {DURATION_PARTS: {"amount": amount, "unit": unit, "max": LONGEST}}


#: the id of a stored thing (a segment, an audience, a template)
ID_REF = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def ref(resource: str, title: str) -> dict[str, Any]:
    """The id of a stored thing the canvas offers as a dropdown: `x-resource` names the API
    collection (`/api/<resource>`) it lists. Custom node types may use it too."""
    return {**ID_REF, "title": title, "x-resource": resource}


def node_ref(node_type: str, title: str) -> dict[str, Any]:
    """The id of another node of this campaign (of `node_type`): the canvas offers the
    document's nodes of that type, and renames it when nodes are pasted with new ids."""
    return {"type": "string", "minLength": 1, "title": title, "x-node-ref": node_type}
