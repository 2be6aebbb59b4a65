"""Schema fragments the built-in node families share."""

from engine.models import MAX_ID

DURATION = {"type": "string", "pattern": r"^\+?\d+(\.\d+)?(m|min|minutes|h|hours|d|days|w|weeks)$",
            "description": "e.g. 30m, 2h, 7d, 1w"}
ID_REF = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
