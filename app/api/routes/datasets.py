"""Dataset entries (docs/opper-v2-api.md §5). Each function owns one dataset; its id is on the function."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import CurrentProject, Datasets
from app.schemas.calls import ErrorBody
from app.schemas.datasets import EntryCreate, EntryOut, EntryUpdate
from app.schemas.paging import PageParams, Paginated

router = APIRouter(tags=["datasets"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422)}


@router.post("/datasets/{dataset_id}", response_model=EntryOut, responses=_ERRORS, summary="Add a dataset entry")
def create_entry(dataset_id: str, body: EntryCreate, project: CurrentProject, datasets: Datasets) -> EntryOut:
    """`input`, `output` and `expected` take any JSON; responses carry them as JSON text."""
    return datasets.create_entry(project, dataset_id, body)


@router.get(
    "/datasets/{dataset_id}/entries",
    response_model=Paginated[EntryOut],
    responses=_ERRORS,
    summary="List dataset entries",
)
def list_entries(dataset_id: str, project: CurrentProject, datasets: Datasets, page: PageParams) -> Paginated[EntryOut]:
    """Newest first."""
    return datasets.list_entries(project, dataset_id, page)


@router.post(
    "/datasets/{dataset_id}/entries/query",
    response_model=list[EntryOut],
    responses=_ERRORS,
    summary="Search dataset entries",
)
async def query_entries(
    dataset_id: str,
    project: CurrentProject,
    datasets: Datasets,
    query: Annotated[str, Query(description="Text to match against the entries' inputs")],
    limit: Annotated[int, Query(description="Entries to return, at most 1000")] = 5,
) -> list[EntryOut]:
    """Entries whose input matches the text, most similar first (the ranking few-shot selection uses)."""
    return await datasets.query(project, dataset_id, query, limit)


@router.get(
    "/datasets/{dataset_id}/entries/{entry_id}",
    response_model=EntryOut,
    responses=_ERRORS,
    summary="Get a dataset entry",
)
def get_entry(dataset_id: str, entry_id: str, project: CurrentProject, datasets: Datasets) -> EntryOut:
    return datasets.get_entry(project, dataset_id, entry_id)


@router.patch(
    "/datasets/{dataset_id}/entries/{entry_id}",
    response_model=EntryOut,
    responses=_ERRORS,
    summary="Update a dataset entry",
)
def update_entry(
    dataset_id: str, entry_id: str, body: EntryUpdate, project: CurrentProject, datasets: Datasets
) -> EntryOut:
    """Only the fields sent change."""
    return datasets.update_entry(project, dataset_id, entry_id, body)


@router.delete(
    "/datasets/{dataset_id}/entries/{entry_id}", status_code=204, responses=_ERRORS, summary="Delete a dataset entry"
)
def delete_entry(dataset_id: str, entry_id: str, project: CurrentProject, datasets: Datasets) -> Response:
    datasets.delete_entry(project, dataset_id, entry_id)
    return Response(status_code=204)
