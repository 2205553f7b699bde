"""`POST /v2/embeddings`: vectors for a text or a list of texts from an OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import CurrentProject, State
from app.schemas.calls import ErrorBody
from app.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from app.services.embeddings import EmbeddingService
from app.services.model_catalog import ModelCatalog

router = APIRouter(tags=["embeddings"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422, 502)}


def get_embedding_service(state: State) -> EmbeddingService:
    catalog = ModelCatalog.from_settings(state.db, state.settings)
    return EmbeddingService(state.registry, catalog, state.settings.embedding_model)


@router.post("/embeddings", response_model=EmbeddingResponse, responses=_ERRORS, summary="Create embeddings")
async def create_embeddings(
    body: EmbeddingRequest,
    project: CurrentProject,
    service: Annotated[EmbeddingService, Depends(get_embedding_service)],
) -> EmbeddingResponse:
    """`model` may be an alias or a fallback list: the first model that answers wins. 422: unusable input;
    502: every model failed (`detail.attempts` names each failure)."""
    return await service.create(project.id, body)
