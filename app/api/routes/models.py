"""`/v2/models`: the providers' models with their prices, and the project's custom models and aliases."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, Response

from app.api.deps import Catalog, CurrentProject, State
from app.engine.cost import PriceTable
from app.schemas.calls import ErrorBody
from app.schemas.models import (
    AliasCreate,
    AliasOut,
    AliasUpdate,
    CustomModelCreate,
    CustomModelOut,
    CustomModelUpdate,
    LanguageModelOut,
)
from app.schemas.paging import PageParams, Paginated, paginated
from app.store.models_catalog import AliasRecord, CustomModelRecord

router = APIRouter(tags=["models"])

_READ_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404)}
_WRITE_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 422)}


@lru_cache(maxsize=4)
def _price_table(path: str) -> PriceTable:
    return PriceTable.from_path(path or None)


def _custom_out(record: CustomModelRecord) -> CustomModelOut:
    return CustomModelOut(id=record.id, name=record.name, identifier=record.identifier, extra=record.extra)


def _alias_out(record: AliasRecord) -> AliasOut:
    return AliasOut(
        id=record.id, name=record.name, fallback_models=list(record.fallback_models), description=record.description
    )


@router.get("/models", response_model=Paginated[LanguageModelOut], responses=_READ_ERRORS, summary="List models")
def list_models(project: CurrentProject, state: State, page: PageParams) -> dict:
    """The models of the price table (`CONVEYOR_PRICE_TABLE` or the bundled one), with USD per token."""
    models = _price_table(state.settings.price_table_path).models()
    items = [
        LanguageModelOut(
            hosting_provider=m.hosting_provider,
            name=m.name,
            location=m.location,
            input_cost_per_token=m.input_cost_per_token,
            output_cost_per_token=m.output_cost_per_token,
        )
        for m in models[page.offset : page.offset + page.limit]
    ]
    return paginated(items, len(models))


# --- custom models ------------------------------------------------------------------------------


@router.post(
    "/models/custom", response_model=CustomModelOut, responses=_WRITE_ERRORS, summary="Register a custom model"
)
def register_custom_model(body: CustomModelCreate, project: CurrentProject, catalog: Catalog) -> CustomModelOut:
    """An OpenAI-compatible endpoint (`extra.api_base`) whose `name` can then be used as a call's `model`.
    The `api_key` is stored encrypted (needs CONVEYOR_SECRET_KEY) and never returned."""
    return _custom_out(catalog.register_custom(project.id, body))


@router.get("/models/custom", response_model=Paginated[CustomModelOut], responses=_READ_ERRORS)
def list_custom_models(project: CurrentProject, catalog: Catalog, page: PageParams) -> dict:
    records, total = catalog.custom.list(project.id, page.offset, page.limit)
    return paginated([_custom_out(r) for r in records], total)


@router.get("/models/custom/by-name/{name:path}", response_model=CustomModelOut, responses=_READ_ERRORS)
def get_custom_model_by_name(name: str, project: CurrentProject, catalog: Catalog) -> CustomModelOut:
    return _custom_out(catalog.custom.get_by_name(project.id, name))


@router.get("/models/custom/{model_id}", response_model=CustomModelOut, responses=_READ_ERRORS)
def get_custom_model(model_id: str, project: CurrentProject, catalog: Catalog) -> CustomModelOut:
    return _custom_out(catalog.custom.get(project.id, model_id))


@router.patch("/models/custom/{model_id}", response_model=CustomModelOut, responses=_WRITE_ERRORS)
def update_custom_model(
    model_id: str, body: CustomModelUpdate, project: CurrentProject, catalog: Catalog
) -> CustomModelOut:
    """Omitted fields are kept; `extra` is replaced as a whole; `api_key: null` removes the key."""
    return _custom_out(catalog.update_custom(project.id, model_id, body))


@router.delete("/models/custom/{model_id}", status_code=204, response_class=Response, responses=_READ_ERRORS)
def delete_custom_model(model_id: str, project: CurrentProject, catalog: Catalog) -> Response:
    catalog.custom.delete(project.id, model_id)
    return Response(status_code=204)


# --- aliases --------------------------------------------------------------------------------------


@router.post("/models/aliases", response_model=AliasOut, responses=_WRITE_ERRORS, summary="Create a model alias")
def create_alias(body: AliasCreate, project: CurrentProject, catalog: Catalog) -> AliasOut:
    """A name that expands into `fallback_models`, tried in order, wherever a model name is accepted."""
    return _alias_out(catalog.create_alias(project.id, body))


@router.get("/models/aliases", response_model=Paginated[AliasOut], responses=_READ_ERRORS)
def list_aliases(project: CurrentProject, catalog: Catalog, page: PageParams) -> dict:
    records, total = catalog.aliases.list(project.id, page.offset, page.limit)
    return paginated([_alias_out(r) for r in records], total)


@router.get("/models/aliases/by-name/{name:path}", response_model=AliasOut, responses=_READ_ERRORS)
def get_alias_by_name(name: str, project: CurrentProject, catalog: Catalog) -> AliasOut:
    return _alias_out(catalog.aliases.get_by_name(project.id, name))


@router.get("/models/aliases/{alias_id}", response_model=AliasOut, responses=_READ_ERRORS)
def get_alias(alias_id: str, project: CurrentProject, catalog: Catalog) -> AliasOut:
    return _alias_out(catalog.aliases.get(project.id, alias_id))


@router.patch("/models/aliases/{alias_id}", response_model=AliasOut, responses=_WRITE_ERRORS)
def update_alias(alias_id: str, body: AliasUpdate, project: CurrentProject, catalog: Catalog) -> AliasOut:
    """Omitted fields are kept; `description: null` clears it."""
    return _alias_out(catalog.update_alias(project.id, alias_id, body))


@router.delete("/models/aliases/{alias_id}", status_code=204, response_class=Response, responses=_READ_ERRORS)
def delete_alias(alias_id: str, project: CurrentProject, catalog: Catalog) -> Response:
    catalog.aliases.delete(project.id, alias_id)
    return Response(status_code=204)
