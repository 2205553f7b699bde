"""HTTP models of `POST /v2/embeddings` (docs/opper-v2-api.md §8), OpenAI-shaped."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.calls import ModelInput

MAX_INPUTS = 2048  # OpenAI's own limit per request


class EmbeddingRequest(BaseModel):
    input: str | list[str] = Field(description=f"A text, or a list of up to {MAX_INPUTS} texts, each non-empty")
    model: ModelInput | None = Field(
        None,
        description="An embedding model (`openai/text-embedding-3-small`, a custom model, an alias) or a fallback "
        "list; options such as `dimensions` go to the provider. Default: CONVEYOR_EMBEDDING_MODEL",
    )


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float]


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    model: str = Field(description="The model that produced the vectors")
    data: list[EmbeddingItem]
    usage: EmbeddingUsage
