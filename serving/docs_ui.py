"""API docs pages served from local files, so `/docs` and `/redoc` work offline.

FastAPI's default pages load Swagger UI and ReDoc from a CDN; the Swagger UI distribution comes
from the `swagger-ui-bundle` package and the ReDoc standalone script is not shipped, so `/redoc`
renders the same Swagger UI (one offline docs UI is better than a blank page).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"


def _docs_page(app: FastAPI) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} — API docs",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


def install_docs(app: FastAPI) -> None:
    """Mount the Swagger UI files and add `/docs`, `/docs/oauth2-redirect` and `/redoc`.

    Build the app with `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not added.
    """
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def docs() -> HTMLResponse:
        return _docs_page(app)

    @router.get("/docs/oauth2-redirect")
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return _docs_page(app)

    app.include_router(router)
