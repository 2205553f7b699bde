"""`POST /v2/call`: complete a task and wait for the answer."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentProject, State
from app.schemas.calls import CallRequest, CallResponse, ErrorBody

router = APIRouter(tags=["calls"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422, 502, 503, 504)}


@router.post("/call", response_model=CallResponse, responses=_ERRORS, summary="Complete a task")
async def call(body: CallRequest, project: CurrentProject, state: State) -> CallResponse:
    """Runs the task as a job on the worker queue and answers with its result (schema-valid when an
    output schema is given). 502 means every model in the chain failed; `detail.attempts` lists them."""
    return await state.calls.call_and_wait(project, body)
