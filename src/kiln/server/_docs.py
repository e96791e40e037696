"""/docs (Swagger UI) and /redoc from assets shipped in the package: no CDN, no internet.

The pages and /static are public GETs, like /openapi.json: reading the API's shape needs
no token; calling an operation from the page ("Try it out") sends the token given under
"Authorize", as any client would.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC", "add_docs"]

STATIC = Path(__file__).with_name("static")


def add_docs(app: FastAPI) -> None:
    """Serve the vendored assets at /static and the two documentation pages on them."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{base}/static/swagger-ui-bundle.js",
            swagger_css_url=f"{base}/static/swagger-ui.css",
            swagger_favicon_url=f"{base}/static/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=f"{base}/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{base}/static/redoc.standalone.js",
            redoc_favicon_url=f"{base}/static/favicon-32x32.png",
            with_google_fonts=False,
        )
