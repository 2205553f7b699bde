"""Saving calls to their function's dataset, and feedback on spans (docs/opper-v2-api.md §5, §6)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentProject, Datasets
from app.schemas.calls import ErrorBody
from app.schemas.datasets import FeedbackIn, FeedbackOut, SaveExamplesOut

router = APIRouter(tags=["spans"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422)}


@router.post(
    "/spans/{span_id}/save_examples",
    status_code=201,
    response_model=SaveExamplesOut,
    responses=_ERRORS,
    summary="Save a call to its function's dataset",
)
def save_examples(span_id: str, project: CurrentProject, datasets: Datasets) -> SaveExamplesOut:
    """Copies the call's input and output into a new entry of its function's dataset. Saving the
    same call again returns the entry already saved. A `generation` span saves its call."""
    return datasets.save_examples(project, span_id)


@router.post(
    "/spans/{span_id}/feedback", response_model=FeedbackOut, responses=_ERRORS, summary="Submit feedback on a span"
)
def submit_feedback(span_id: str, body: FeedbackIn, project: CurrentProject, datasets: Datasets) -> FeedbackOut:
    """Records a score from 0.0 (negative) to 1.0 (positive). `save_to_dataset: true` saves the call to
    its function's dataset, `false` never does; left out, a score of 1.0 saves it unless the function's
    configuration sets `feedback.auto_save` to false."""
    return datasets.submit_feedback(project, span_id, body)
