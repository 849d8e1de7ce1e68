"""The govrisk web application: review API and pages today, other routers plugged in by name.

`create_app` assembles routers from `ROUTER_MODULES` (each module exposes `router`), so a new
part of the service (such as scoring) is one entry there. Migrations run when the app is built.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from governance.review.db import make_engine, make_session_factory, upgrade
from governance.review.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ReviewError,
)
from governance.review.settings import ReviewSettings, get_settings
from governance.review.strategy_store import StrategyStore
from governance.strategy import StrategyError
from serving.deps import LoginRequiredError, ReviewState
from serving.docs_ui import install_docs
from serving.limits import RequestLimits
from serving.schemas_errors import EDGE_RESPONSES

#: Modules whose `router` the app includes, in order.
#: Scoring comes first: routes are matched in order and /v1/score is the hot path.
ROUTER_MODULES: tuple[str, ...] = (
    "serving.scoring_api",
    "serving.review_api",
    "serving.pages",
    "serving.experiment_pages",
    "serving.monitoring_pages",
)
STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "govrisk_session"
_SECRET_FILE = ".govrisk-secret"
_STATUS = {
    NotFoundError: 404,
    PermissionDeniedError: 403,
    ConflictError: 409,
    InvalidInputError: 422,
}
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HARDENING_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
_CSP_HEADER = (b"content-security-policy", _PAGE_CSP.encode())
#: Path prefixes of the JSON APIs and their docs: errors there are JSON, never an error page,
#: and nothing there reads the browser session (the APIs take bearer tokens or nothing).
API_PREFIXES = ("/api/", "/v1/", "/docs", "/openapi.json", "/healthz", "/readyz", "/metrics")
#: Longest `msg` and path element of a 422 entry: invalid input is named, never echoed back.
_MAX_ERROR_TEXT = 200
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*): ")


def default_routers() -> list[APIRouter]:
    """The routers of every module in ROUTER_MODULES."""
    return [importlib.import_module(name).router for name in ROUTER_MODULES]


def _secret_key(settings: ReviewSettings) -> str:
    """The cookie-signing secret: configured, or kept in a private file in the data dir."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / _SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret)
    return secret


class _SecurityHeaders:
    """Adds browser hardening headers; the strict CSP applies to the service's own pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        strict = not (path.startswith("/docs") or path.startswith("/redoc"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *_HARDENING_HEADERS]
                if strict:
                    headers.append(_CSP_HEADER)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _PageSessions(SessionMiddleware):
    """Signed-cookie sessions for the pages only; API paths skip them.

    The APIs authenticate with bearer tokens (or not at all), so parsing the cookie and
    wrapping `send` there is overhead on the scoring hot path; skipping it also keeps an API
    route from coming to rely on a browser session (`request.session` fails there).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIXES)


def _error_page(request: Request, status_code: int, message: str) -> Response:
    from serving.pages import render_error

    return render_error(request, status_code, message)


async def _review_error(request: Request, exc: Exception) -> Response:
    code = next((c for cls, c in _STATUS.items() if isinstance(exc, cls)), 400)
    if _is_page(request):
        return _error_page(request, code, str(exc))
    if code == 422:  # FastAPI's documented shape: a list naming the field
        message = str(exc)
        field = _FIELD_PREFIX.match(message)
        loc = ["body", field.group(1)] if field else ["body"]
        error = {"loc": loc, "msg": message[:_MAX_ERROR_TEXT], "type": "value_error"}
        return JSONResponse({"detail": [error]}, status_code=code)
    return JSONResponse({"detail": str(exc)}, status_code=code)


def _short(part: Any) -> Any:
    return part[:_MAX_ERROR_TEXT] if isinstance(part, str) else part


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 shape without the input, its context or long messages echoed back."""
    del request
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [_short(part) for part in error.get("loc", ())],
            "msg": _short(str(error.get("msg", ""))),
            "type": str(error.get("type", "value_error")),
        }
        for error in exc.errors()[:50]
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def _strategy_error(request: Request, exc: Exception) -> Response:
    message = f"the strategies directory has problems; fix them first: {exc}"
    if _is_page(request):
        return _error_page(request, 503, message)
    return JSONResponse({"detail": message}, status_code=503)


async def _database_busy(request: Request, exc: Exception) -> Response:
    """SQLite's "database is locked" (another process held the write lock past the busy
    timeout) is a 503 with Retry-After, not a 500: the request changed nothing and may be
    sent again."""
    assert isinstance(exc, OperationalError)
    if "locked" not in str(exc.orig).lower():
        raise exc
    message = "the database is busy with another writer; try again in a moment"
    response = (
        _error_page(request, 503, message)
        if _is_page(request)
        else JSONResponse({"detail": message}, status_code=503)
    )
    response.headers["Retry-After"] = "1"
    return response


async def _login_required(request: Request, exc: Exception) -> Response:
    del request
    assert isinstance(exc, LoginRequiredError)
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_page(request) and exc.status_code in (403, 404, 405, 409, 422):
        page = _error_page(request, exc.status_code, str(exc.detail))
        page.headers.update(exc.headers or {})  # e.g. Allow on 405
        return page
    return await http_exception_handler(request, exc)


def create_app(
    settings: ReviewSettings | None = None, *, routers: Sequence[APIRouter] | None = None
) -> FastAPI:
    """Build the app: migrate the database, then mount static files and every router."""
    settings = settings or get_settings()
    engine = make_engine(settings.resolved_database_url())
    if settings.migrate_on_start:
        upgrade(engine)
    state = ReviewState(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        store=StrategyStore(settings.resolved_strategies_dir()),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        del app
        yield
        engine.dispose()

    app = FastAPI(
        title="govrisk",
        summary="Review queue, escalations and strategy-change approvals for traffic governance.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.review = state
    app.add_middleware(
        _PageSessions,
        secret_key=_secret_key(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    # Limits run before sessions and routes, inside the security headers (refusals get them).
    app.add_middleware(RequestLimits)
    app.add_middleware(_SecurityHeaders)
    handlers: dict[Any, Any] = {
        ReviewError: _review_error,
        StrategyError: _strategy_error,
        LoginRequiredError: _login_required,
        StarletteHTTPException: _http_error,
        RequestValidationError: _validation_error,
        OperationalError: _database_busy,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
    # Routers before the static mounts and docs: routes are matched in order, and no router
    # path overlaps /static, /docs or /redoc.
    for router in routers if routers is not None else default_routers():
        app.include_router(router, responses=EDGE_RESPONSES)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_docs(app)
    return app
