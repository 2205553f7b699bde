"""Annotated dependency aliases used by the route handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from app.api.state import AppState
from app.store.projects import ProjectRef


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency on its thread pool, a hop per request for a getter.
    return request.app.state.conveyor


async def get_project(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> ProjectRef:
    return await request.app.state.authenticator.authenticate(authorization)


State = Annotated[AppState, Depends(get_state)]
CurrentProject = Annotated[ProjectRef, Depends(get_project)]
