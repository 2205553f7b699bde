"""The web console: one HTML page and its ES modules and CSS, served by the API from this package.

The page needs no auth to load; it asks for an API key and sends it as `Authorization: Bearer` on
its own `/v2` requests, so it sees exactly what that key's project sees through the public API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The page runs only its own files and talks only to this API: no inline script or style, no framing.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}

router = APIRouter(tags=["console"])


@router.get(
    "/console",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The console's HTML page (no key needed)"}},
    summary="The web console",
)
def console_page() -> FileResponse:
    """An HTML page: recent jobs, a job's attempts, live batches, traces, functions, usage and cost.
    It asks for an API key once (kept for the browser session) and reads everything from `/v2`."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/console/", include_in_schema=False)
def console_slash() -> RedirectResponse:
    return RedirectResponse("/console", status_code=308)


def install_console(app: FastAPI) -> None:
    """Mount the page at `/console` and its files at `/console/static/`."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
