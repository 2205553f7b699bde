"""`POST /v2/call`: complete a task and wait for the answer (or get the job at once with a 202)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from app.api.deps import Calls, CurrentProject
from app.api.errors import error_response
from app.api.routes.jobs import REPLAYED_HEADER, IdempotencyKey, job_accepted
from app.schemas.calls import CallRequest, CallResponse, ErrorBody
from app.schemas.jobs import JobOut
from app.services.calls import CallOutcome

router = APIRouter(tags=["calls"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 422, 502, 503)}
ACCEPTED = {
    202: {"model": JobOut, "description": "With `Prefer: respond-async`, or when the wait ran out: the job to poll"}
}
Prefer = Annotated[str | None, Header(description="`respond-async`: answer 202 with the job at once")]


def wants_async(prefer: str | None) -> bool:
    """RFC 7240: `Prefer: respond-async` (among other preferences, with or without parameters)."""
    return any(part.split(";")[0].strip().lower() == "respond-async" for part in (prefer or "").split(","))


@router.post("/call", response_model=CallResponse, responses={**ACCEPTED, **_ERRORS}, summary="Complete a task")
async def call(
    body: CallRequest,
    project: CurrentProject,
    calls: Calls,
    prefer: Prefer = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Runs the task as a job on the worker queue and answers with its result (schema-valid when an
    output schema is given). 502 means every model in the chain failed; `detail.attempts` lists them.
    If the result takes longer than `CONVEYOR_CALL_WAIT_SECONDS`, or with `Prefer: respond-async`,
    the answer is 202 with the job (`GET /v2/jobs/{id}` gives the result once it is done)."""
    outcome = await calls.call(project, body, respond_async=wants_async(prefer), idempotency_key=idempotency_key)
    return outcome_response(outcome, prefer_applied=wants_async(prefer))


def outcome_response(outcome: CallOutcome, *, prefer_applied: bool) -> JSONResponse:
    """200 with the result, the stored error, or 202 with the job still running."""
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else {}
    if outcome.response is not None:
        return JSONResponse(outcome.response.model_dump(mode="json"), headers=headers)
    if outcome.error is not None:
        error = outcome.error
        return error_response(error.status_code, error.error_type, error.message, error.detail, headers=headers)
    return job_accepted(outcome.job, replayed=outcome.replayed, prefer_applied=prefer_applied)
