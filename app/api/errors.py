"""Every error leaves as JSON `{type, message, detail}`; the official SDK needs `detail` present."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AcceptedJobUnavailable, ConveyorError
from app.store.db import DATABASE_UNAVAILABLE

log = logging.getLogger("conveyor.api")


def error_response(status: int, error_type: str, message: str, detail: Any, headers=None) -> JSONResponse:  # noqa: ANN001
    return JSONResponse({"type": error_type, "message": message, "detail": detail}, status_code=status, headers=headers)


def accepted_job_unavailable(exc: AcceptedJobUnavailable) -> JSONResponse:
    """503 naming the accepted job (`job_id` beside `detail`, and its `Location`): poll it, do not resubmit."""
    body = {"type": exc.error_type, "message": exc.message, "detail": exc.detail, "job_id": exc.job_id}
    headers = {"Location": f"/v2/jobs/{exc.job_id}", "Retry-After": "1"}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{location or 'body'}: {error.get('msg', 'invalid')}"


def _allowed_methods(request: Request) -> list[str]:
    """Every method served at this path. Starlette's 405 names only those of the first route that matched
    the path, though a path's methods are often spread over several routes (GET, PATCH, DELETE). Read from
    the OpenAPI document, which lists every route (FastAPI's router keeps included routes privately)."""
    table = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = []
        for template, operations in request.app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\{[^/{}]+\\}", "[^/]+", re.escape(template)) + "$")
            methods = {method.upper() for method in operations}
            table.append((pattern, methods | ({"HEAD"} if "GET" in methods else set())))
        request.app.state.allowed_methods = table
    path = request.url.path
    return sorted({method for pattern, methods in table if pattern.match(path) for method in methods})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConveyorError)
    async def conveyor_error(_: Request, exc: ConveyorError) -> JSONResponse:
        if exc.status_code >= 500 and exc.status_code not in (502, 503, 504):
            log.error("request failed", extra={"error_type": exc.error_type, "error": exc.message})
        if isinstance(exc, AcceptedJobUnavailable):
            return accepted_job_unavailable(exc)
        return error_response(exc.status_code, exc.error_type, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            reason = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
            return error_response(400, "BadRequestError", "the request body is not valid JSON", f"body: {reason}")
        message = "; ".join(_describe(e) for e in errors[:5])
        detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
        return error_response(422, "RequestValidationError", message, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "NotFoundError", 405: "MethodNotAllowedError", 401: "UnauthorizedError"}
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(
            exc.status_code, kinds.get(exc.status_code, "HTTPError"), str(exc.detail), exc.detail, headers
        )

    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database refused or dropped the connection (down, restarting, out of connections):
        # nothing was half-written (every write is one transaction), so the caller may simply retry.
        log.warning("database unavailable", extra={"error": str(getattr(exc, "orig", exc))[:200]})
        return error_response(
            503,
            "ServiceUnavailableError",
            "the database is unavailable; retry shortly",
            "database: connection refused or exhausted",
            headers={"Retry-After": "1"},
        )

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "InternalServerError", "internal error", type(exc).__name__)
