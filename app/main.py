"""`create_app(settings)`: the FastAPI application with its routers, lifespan and error handlers."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app.api import routes
from app.api.auth import ApiKeyAuthenticator
from app.api.body_limit import BodySizeLimit
from app.api.errors import install_error_handlers
from app.api.openapi import install_openapi
from app.api.routes import health, prometheus
from app.api.state import AppState
from app.api.storable_input import StorableInput
from app.config import Settings, get_settings
from app.console import install_console
from app.observability import tracing


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        state = AppState.build(settings)
        await run_in_threadpool(state.register_configured_keys)
        await state.start()
        app.state.conveyor = state
        app.state.authenticator = ApiKeyAuthenticator(state.projects)
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(
        title="Conveyor",
        version="0.1.0",
        description="Self-hosted LLM task completion speaking the Opper v2 API, run as durable jobs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health.router)
    app.include_router(prometheus.router)
    for router in routes.v2_routers():
        app.include_router(router, prefix="/v2")
    app.add_middleware(StorableInput)  # inside BodySizeLimit, which bounds what it reads
    install_console(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        overrides={"/v2/batches": settings.batch_max_upload_bytes},
    )
    tracing.instrument_api(app)  # outermost, when OTEL_EXPORTER_OTLP_ENDPOINT is set
    return app
