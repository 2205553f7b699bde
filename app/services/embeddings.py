"""`POST /v2/embeddings`: expand the requested model (aliases, custom models), then ask each model of
the chain in order until one answers. Bad input is a 422, an unusable model a 400, and a chain on
which every model failed a 502 naming each failure, all with `type`, `message` and `detail`."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from app.engine.task import ModelSpec
from app.errors import BadRequest, ConveyorError, ProviderError, UnprocessableRequest
from app.providers.custom import CUSTOM_PREFIX
from app.providers.registry import ProviderRegistry
from app.schemas.calls import ModelInput, ModelObject
from app.schemas.embeddings import MAX_INPUTS, EmbeddingItem, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from app.services.model_catalog import ModelCatalog


class EmbeddingFailed(ConveyorError):
    """Every model of the chain failed to embed the input."""

    status_code = 502
    error_type = "EmbeddingFailedError"

    def __init__(self, failures: list[tuple[str, ProviderError]]) -> None:
        tried = ", ".join(model for model, _ in failures)
        super().__init__(
            f"embedding failed on every model ({tried}); last error: {failures[-1][1].message}",
            detail={
                "attempts": [
                    {"model": model, "error_type": err.error_type, "message": err.message} for model, err in failures
                ]
            },
        )


@dataclass(frozen=True)
class _Candidate:
    shown_name: str  # reported as `model`: the provider model, or the name a custom model was asked by
    spec: ModelSpec


def input_texts(value: str | list[str]) -> list[str]:
    """The texts to embed; UnprocessableRequest naming the input when one is empty or there are too many."""
    texts = [value] if isinstance(value, str) else list(value)
    if not texts:
        raise UnprocessableRequest("input is an empty list", detail="input: give at least one text")
    if len(texts) > MAX_INPUTS:
        raise UnprocessableRequest("too many inputs", detail=f"input: at most {MAX_INPUTS} texts per request")
    for index, text in enumerate(texts):
        if not text.strip():
            where = "input" if isinstance(value, str) else f"input[{index}]"
            raise UnprocessableRequest("an input text is empty", detail=f"{where}: must not be empty")
    return texts


def requested_specs(model: ModelInput | None, default_model: str) -> list[ModelSpec]:
    entries: list[str | ModelObject] = (
        [default_model] if model is None else model if isinstance(model, list) else [model]
    )
    if not entries:
        raise BadRequest("the fallback list is empty; give at least one model", field_name="model")
    return [
        ModelSpec(e) if isinstance(e, str) else ModelSpec(e.name, dict(e.options or {}), dict(e.extra_headers or {}))
        for e in entries
    ]


class EmbeddingService:
    def __init__(self, registry: ProviderRegistry, catalog: ModelCatalog, default_model: str) -> None:
        self.registry = registry
        self.catalog = catalog
        self.default_model = default_model

    async def create(self, project_id: str, request: EmbeddingRequest) -> EmbeddingResponse:
        texts = input_texts(request.input)
        candidates = await run_in_threadpool(self._candidates, project_id, request.model)
        clients = [(c, self.registry.embeddings(c.spec.name)) for c in candidates]  # 400 before any request
        failures: list[tuple[str, ProviderError]] = []
        for candidate, client in clients:
            try:
                result = await client.create(
                    texts, options=candidate.spec.options, extra_headers=candidate.spec.extra_headers
                )
            except ProviderError as err:
                failures.append((candidate.shown_name, err))
                continue
            return EmbeddingResponse(
                model=candidate.shown_name,
                data=[EmbeddingItem(index=i, embedding=vector) for i, vector in enumerate(result.vectors)],
                usage=EmbeddingUsage(prompt_tokens=result.input_tokens, total_tokens=result.input_tokens),
            )
        raise EmbeddingFailed(failures)

    def _candidates(self, project_id: str, model: ModelInput | None) -> list[_Candidate]:
        candidates = []
        for requested in requested_specs(model, self.default_model):
            for spec in self.catalog.expand(project_id, (requested,)):
                custom = spec.name.startswith(f"{CUSTOM_PREFIX}/") and not requested.name.startswith(
                    f"{CUSTOM_PREFIX}/"
                )
                candidates.append(_Candidate(requested.name if custom else spec.name, spec))
        return candidates
