"""Error responses of every API route: their schemas and the status codes declared in OpenAPI.

Every error body is `{"detail": ...}`: a sentence for most codes, and for 422 FastAPI's
documented list of `{loc, msg, type}` (never the offending input).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorPublic(BaseModel):
    """An error: what went wrong and how to fix it."""

    detail: str


class FieldErrorPublic(BaseModel):
    """One invalid field: where (`loc`), what is wrong (`msg`) and its kind (`type`)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorPublic(BaseModel):
    """Invalid input, one entry per offending field."""

    detail: list[FieldErrorPublic]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": description}


#: Answered by the request limits before any route runs (serving.limits.RequestLimits).
EDGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Content-Length is not a number of bytes."),
    408: _error("The request body did not arrive in time."),
    413: _error("Request body too large."),
    415: _error("The body is not JSON."),
}
#: What a review API route may answer besides success (see docs/review-service.md).
REVIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("Missing, unknown, revoked or expired API token."),
    403: _error("The caller's role or team may not do this."),
    404: _error("No such object (or not one the caller may know of)."),
    409: _error("The object's state does not allow this (lease, workflow, already decided)."),
    422: {"model": ValidationErrorPublic, "description": "Invalid input, naming each field."},
    503: _error("The strategies directory has invalid files."),
}
