"""Functions, their revisions, and calls of a stored function (docs/opper-v2-api.md §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from starlette.convertors import StringConvertor, register_url_convertor

from app.api.deps import Calls, CurrentProject, Functions
from app.api.routes.calls import ACCEPTED, Prefer, outcome_response, wants_async
from app.api.routes.jobs import IdempotencyKey
from app.schemas.calls import CallResponse, ErrorBody
from app.schemas.functions import (
    CreateFunctionRequest,
    FunctionCallRequest,
    FunctionListItem,
    FunctionOut,
    RevisionItem,
    UpdateFunctionRequest,
)
from app.schemas.paging import PageParams, Paginated
from app.services.calls import CallService
from app.store.projects import ProjectRef


class RevisionIdConvertor(StringConvertor):
    """A revision id segment that is never `stream`, so `/call/stream` reaches the streaming route
    whichever router is mounted first."""

    regex = r"(?!stream$)[^/]+"


register_url_convertor("revision_id", RevisionIdConvertor())

router = APIRouter(tags=["functions"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422)}
_CALL_ERRORS = {**ACCEPTED, **{code: {"model": ErrorBody} for code in (400, 401, 404, 409, 422, 502, 503)}}


@router.post(
    "/functions",
    status_code=201,
    response_model=FunctionOut,
    responses={**_ERRORS, 409: {"model": ErrorBody}},
    summary="Create a function",
)
def create_function(body: CreateFunctionRequest, project: CurrentProject, functions: Functions) -> FunctionOut:
    """Creates the function, its first revision and its dataset. 409 when the name is taken."""
    return functions.create(project, body)


@router.get("/functions", response_model=Paginated[FunctionListItem], responses=_ERRORS, summary="List functions")
def list_functions(
    project: CurrentProject,
    functions: Functions,
    page: PageParams,
    name: Annotated[str | None, Query(description="Only names containing this (case-insensitive)")] = None,
    sort: Annotated[
        str | None, Query(description="`name` or `created_at`; a `-` prefix sorts descending (default)")
    ] = None,
) -> Paginated[FunctionListItem]:
    return functions.list(project, name, sort, page)


@router.get(
    "/functions/by-name/{name:path}", response_model=FunctionOut, responses=_ERRORS, summary="Get a function by name"
)
def get_function_by_name(name: str, project: CurrentProject, functions: Functions) -> FunctionOut:
    """The function at its latest revision. Names may contain `/` and `.`."""
    return functions.get_by_name(project, name)


@router.get("/functions/{function_id}", response_model=FunctionOut, responses=_ERRORS, summary="Get a function")
def get_function(function_id: str, project: CurrentProject, functions: Functions) -> FunctionOut:
    """The function at its latest revision."""
    return functions.get(project, function_id)


@router.patch(
    "/functions/{function_id}",
    response_model=FunctionOut,
    responses={**_ERRORS, 409: {"model": ErrorBody}},
    summary="Update a function",
)
def update_function(
    function_id: str, body: UpdateFunctionRequest, project: CurrentProject, functions: Functions
) -> FunctionOut:
    """Fields sent replace the current ones; a changed definition is recorded as a new revision."""
    return functions.update(project, function_id, body)


@router.delete("/functions/{function_id}", status_code=204, responses=_ERRORS, summary="Delete a function")
def delete_function(function_id: str, project: CurrentProject, functions: Functions) -> Response:
    """Deletes the function with its revisions and its dataset."""
    functions.delete(project, function_id)
    return Response(status_code=204)


@router.get(
    "/functions/{function_id}/revisions",
    response_model=Paginated[RevisionItem],
    responses=_ERRORS,
    summary="List a function's revisions",
)
def list_revisions(
    function_id: str, project: CurrentProject, functions: Functions, page: PageParams
) -> Paginated[RevisionItem]:
    """Newest first."""
    return functions.revisions(project, function_id, page)


@router.get(
    "/functions/{function_id}/revisions/{revision_id}",
    response_model=FunctionOut,
    responses=_ERRORS,
    summary="Get a function at a revision",
)
def get_revision(function_id: str, revision_id: str, project: CurrentProject, functions: Functions) -> FunctionOut:
    return functions.revision(project, function_id, revision_id)


@router.post(
    "/functions/{function_id}/call",
    response_model=CallResponse,
    responses=_CALL_ERRORS,
    summary="Call a function",
)
async def call_function(
    function_id: str,
    body: FunctionCallRequest,
    project: CurrentProject,
    calls: Calls,
    prefer: Prefer = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Runs the function's latest revision (its instructions, schemas, model and configuration, plus
    few-shot examples from its dataset) on `input`, as a job, and answers like `/call`."""
    return await _answer_call(calls, project, function_id, None, body, prefer, idempotency_key)


@router.post(
    "/functions/{function_id}/call/{revision_id:revision_id}",
    response_model=CallResponse,
    responses=_CALL_ERRORS,
    summary="Call a function at a revision",
)
async def call_function_revision(
    function_id: str,
    revision_id: str,
    body: FunctionCallRequest,
    project: CurrentProject,
    calls: Calls,
    prefer: Prefer = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Like calling the function, with the definition pinned to `revision_id`."""
    return await _answer_call(calls, project, function_id, revision_id, body, prefer, idempotency_key)


async def _answer_call(
    calls: CallService,
    project: ProjectRef,
    function_id: str,
    revision_id: str | None,
    body: FunctionCallRequest,
    prefer: str | None,
    idempotency_key: str | None,
) -> JSONResponse:
    """Both call routes: the function at `revision_id` (None: its latest), answered like `/call`."""
    respond_async = wants_async(prefer)
    outcome = await calls.call_function(
        project, function_id, revision_id, body, respond_async=respond_async, idempotency_key=idempotency_key
    )
    return outcome_response(outcome, prefer_applied=respond_async)
