"""Errors a caller can act on, one type per failure.

Each is raised where the failure is detected; `server.py` turns them into the JSON error
shape `{"error": {"code", "message", "details"}}` in one place, and the CLI prints them.
"""

from __future__ import annotations

from typing import Any


class CampaignCanvasError(Exception):
    """Base class. `code` is stable for programs; `status` is the HTTP status to answer."""

    code = "error"
    status = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the error (e.g. Retry-After)."""
        return {}


class RegistrationError(CampaignCanvasError):
    """A node type declaration is invalid or its name is taken."""

    code = "invalid_node_type"


class DocumentInvalid(CampaignCanvasError):
    """A campaign document failed validation; `details` lists every problem found."""

    code = "invalid_document"
    status = 422


class Unauthorized(CampaignCanvasError):
    """No valid credentials: log in (browser) or send `Authorization: Bearer <API key>`."""

    code = "unauthorized"
    status = 401


class Forbidden(CampaignCanvasError):
    """Valid credentials whose role may not do this (a viewer changing something)."""

    code = "forbidden"
    status = 403


class NotFound(CampaignCanvasError):
    code = "not_found"
    status = 404


class InvalidInput(CampaignCanvasError):
    """A request body or argument is malformed; `details` names the field."""

    code = "invalid_input"
    status = 400

    @classmethod
    def field(cls, pointer: str, message: str, code: str = "invalid_field") -> InvalidInput:
        """The field at `pointer` (a JSON pointer) is wrong: `message` says how."""
        return cls(f"{pointer.lstrip('/') or 'body'} {message}",
                   [{"pointer": pointer, "code": code, "message": message}])

    @classmethod
    def of(cls, problems: list[dict[str, Any]]) -> InvalidInput:
        """Every problem at once (each `{"pointer", "message"}`); the message names the
        first and counts the others."""
        first = problems[0]
        more = f" (and {len(problems) - 1} more; see details)" if len(problems) > 1 else ""
        return cls(f"{first['pointer'].lstrip('/') or 'body'} {first['message']}{more}", problems)


class InvalidState(CampaignCanvasError):
    """The action does not apply in the object's current state (e.g. launch a stopped campaign)."""

    code = "invalid_state"
    status = 409


class RuleError(CampaignCanvasError):
    """A filter or segment rule cannot be compiled; `details` carries its JSON pointer."""

    code = "invalid_rule"
    status = 422


class NameTaken(CampaignCanvasError):
    """Another object of the kind already has this name (names are how people pick one)."""

    code = "name_taken"
    status = 409


class TemplateError(CampaignCanvasError):
    """Message content cannot be compiled or rendered safely: a syntax error, a forbidden
    construct (Python internals, other files) or a limit (time, output size, loop
    iterations). The message starts with the field; `details` carry its pointer and line."""

    code = "invalid_template"
    status = 422


class BodyTooLarge(CampaignCanvasError):
    """The request body is larger than the caller may send (engine/web/bodies.py); it was
    refused before being read."""

    code = "body_too_large"
    status = 413


class TooManyAttempts(CampaignCanvasError):
    """Too many failed sign-ins for an account or from an address (engine/ops/throttle.py):
    try again after `retry_after` seconds, which the answer's Retry-After header carries."""

    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, [{"pointer": "", "message": message}])
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
