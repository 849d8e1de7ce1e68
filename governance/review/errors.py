"""Errors the review services raise; the HTTP layer maps each family to one status code."""

from __future__ import annotations


class ReviewError(Exception):
    """Base of every review service error; the message says what to do."""


class NotFoundError(ReviewError):
    """The object does not exist or is not visible to the user (HTTP 404)."""


class ConflictError(ReviewError):
    """The request clashes with the current state, e.g. a lease held by someone else (HTTP 409)."""


class PermissionDeniedError(ReviewError):
    """The user's role or team does not allow this (HTTP 403)."""


class InvalidInputError(ReviewError):
    """Input names a missing column, a bad value or a disallowed transition (HTTP 422)."""
