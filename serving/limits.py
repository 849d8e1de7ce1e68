"""Bounds on what the service accepts at its edge, declared once for every route.

Bodies: `RequestLimits` wraps the whole app, so pages, the review API and scoring share one
size limit, one read deadline and one content-type rule, all enforced before a route parses a
byte: a declared Content-Length over the limit is refused (413) without reading the body; a
streamed body is counted as it arrives and refused once it passes the limit; a body that takes
longer than the deadline to arrive is refused (408); a body of the wrong media type is refused
(415): JSON under `/api/` and `/v1/`, form data on pages; a JSON body escaping half a
surrogate pair (not Unicode text, which the database cannot store) is refused (400).

Integers: database ids and counts are signed 64-bit in both databases (SQLite INTEGER,
PostgreSQL BIGINT), so a larger number would overflow inside the driver (a 500). At the edge
they are bounded tighter, by 2^53 - 1, the largest integer a JSON client reads exactly: a
larger one is a 422 naming the parameter, and the bound appears in the OpenAPI schema.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Annotated

import annotated_types as at
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest signed 64-bit integer: the largest id or count either database stores.
MAX_DB_INT = 2**63 - 1
#: Largest integer every JSON client and a float64 hold exactly (JavaScript's
#: Number.MAX_SAFE_INTEGER). Bounds at the edge use it: a larger number sent as JSON may arrive
#: as a float that rounds back inside a looser bound (2^53 + 1 reads as 2^53).
MAX_SAFE_INT = 2**53 - 1

#: A database id (or a version number) in a path, query or body: 1 .. 2^53 - 1.
RowId = Annotated[int, at.Interval(ge=1, le=MAX_SAFE_INT)]
#: A count, offset or rank: 0 .. 2^53 - 1.
Count = Annotated[int, at.Interval(ge=0, le=MAX_SAFE_INT)]
#: A finite number (NaN and infinities, which Python's JSON parser accepts, are refused).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: An integer model input: -(2^53 - 1) .. 2^53 - 1.
FeatureInt = Annotated[int, at.Interval(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]


def parse_row_id(text: str) -> int | None:
    """A form field holding a database id, or None when it is empty or not a valid id."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_SAFE_INT)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_SAFE_INT else None


#: Path prefixes whose bodies are JSON; every other route with a body takes form data.
JSON_PREFIXES = ("/api/", "/v1/")
_JSON_TYPES = ("application/json",)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _media_type(headers: dict[bytes, bytes]) -> str:
    raw = headers.get(b"content-type", b"").decode("latin-1")
    return raw.split(";", 1)[0].strip().lower()


def _accepts(path: str, media_type: str) -> bool:
    if path.startswith(JSON_PREFIXES):
        return media_type in _JSON_TYPES or (
            media_type.startswith("application/") and media_type.endswith("+json")
        )
    return media_type in _FORM_TYPES


class RequestLimits:
    """One body-size limit, read deadline and content-type rule for every HTTP route.

    `max_bytes` and `read_timeout_seconds` default to `ServingSettings` (read on first use).
    Bodies are buffered (at most `max_bytes`) and replayed to the app once complete, so a route
    never waits on a slow client while holding a worker thread or a database lock.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int | None = None,
        read_timeout_seconds: float | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_seconds = read_timeout_seconds

    def _limits(self) -> tuple[int, float]:
        if self.max_bytes is None or self.read_timeout_seconds is None:
            from serving.settings import get_settings

            settings = get_settings()
            if self.max_bytes is None:
                self.max_bytes = settings.max_body_bytes
            if self.read_timeout_seconds is None:
                self.read_timeout_seconds = settings.body_read_timeout_seconds
        return self.max_bytes, self.read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if declared is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        max_bytes, timeout = self._limits()
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 19:
                await error_response(send, 400, "Content-Length is not a number of bytes")
                return
            if int(text) > max_bytes:
                await _too_large(send, max_bytes)
                return
            if int(text) == 0 and not chunked:
                await self.app(scope, receive, send)
                return
        path: str = scope.get("path", "")
        media_type = _media_type(headers)
        if not _accepts(path, media_type):
            wanted = "application/json" if path.startswith(JSON_PREFIXES) else "form data"
            await error_response(
                send, 415, f"send the body as {wanted}, not {media_type or 'no content type'}"
            )
            return
        messages: list[Message] = []
        size = 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    message = await receive()
            except TimeoutError:
                await error_response(
                    send, 408, f"the request body did not arrive within {timeout:g} seconds"
                )
                return
            if message["type"] != "http.request":
                return  # the client went away: nothing to answer
            messages.append(message)
            size += len(message.get("body", b""))
            if size > max_bytes:
                await _too_large(send, max_bytes)
                return
            if not message.get("more_body", False):
                break

        if path.startswith(JSON_PREFIXES) and _has_lone_surrogate(
            b"".join(m.get("body", b"") for m in messages)
        ):
            await error_response(
                send,
                400,
                "the JSON body holds a \\u escape of half a surrogate pair, which is not "
                "Unicode text; send the character itself or both halves",
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _has_lone_surrogate(body: bytes) -> bool:
    """Whether a JSON body escapes a lone UTF-16 surrogate (`"\\ud800"`).

    Python's JSON parser turns one into a string that cannot be encoded (SQLite, responses
    and logs then fail with a 500). Only bodies that escape a surrogate at all are parsed here.
    """
    if b"\\ud" not in body.lower():
        return False
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False  # not JSON: the route answers 422
    return False


async def _too_large(send: Send, max_bytes: int) -> None:
    await error_response(
        send, 413, f"request body is larger than {max_bytes} bytes; send less per call"
    )


async def error_response(send: Send, code: int, message: str) -> None:
    """Answer an ASGI request with a JSON `{"detail": message}` (before any app code runs)."""
    body = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _declared_query(dependant: Dependant) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return frozenset(names)


#: Attribute a route keeps its declared query names in (computed on its first request).
_QUERY_NAMES_ATTR = "_govrisk_query_names"


def refuse_unknown_query(request: Request) -> None:
    """A router dependency: a query parameter the route does not declare is a 422.

    Ignoring it would let a misspelt filter (`?polcy=...`) silently return everything.
    """
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    declared: frozenset[str] | None = getattr(route, _QUERY_NAMES_ATTR, None)
    if declared is None:
        declared = _declared_query(dependant)
        setattr(route, _QUERY_NAMES_ATTR, declared)
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name[:64]),
                    "msg": f"unknown query parameter; this route takes: {allowed}",
                    "type": "extra_forbidden",
                }
                for name in unknown[:5]
            ]
        )


def _iso_datetime_only(value: object) -> object:
    """Refuse numbers for a timestamp (pydantic would read them as Unix seconds)."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("give an ISO 8601 date-time such as 2026-03-02T09:00:00Z")
    return value


#: A timestamp in a query or body: ISO 8601 text only (no Unix seconds).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime_only)]
