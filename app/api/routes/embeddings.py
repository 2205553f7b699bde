"""`POST /v2/embeddings`: vectors for a text or a list of texts from an OpenAI-compatible endpoint."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentProject, Embeddings
from app.schemas.calls import ErrorBody
from app.schemas.embeddings import EmbeddingRequest, EmbeddingResponse

router = APIRouter(tags=["embeddings"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422, 502)}


@router.post("/embeddings", response_model=EmbeddingResponse, responses=_ERRORS, summary="Create embeddings")
async def create_embeddings(
    body: EmbeddingRequest,
    project: CurrentProject,
    service: Embeddings,
) -> EmbeddingResponse:
    """`model` may be an alias or a fallback list: the first model that answers wins. 422: unusable input;
    502: every model failed (`detail.attempts` names each failure)."""
    return await service.create(project.id, body)
