"""Functions and revisions: validate definitions, apply changes as new revisions, shape responses.

Synchronous: route handlers are plain `def`s, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from app.errors import BadRequest, NotFound
from app.providers.base import ModelResolver
from app.schemas.functions import (
    CreateFunctionRequest,
    FunctionListItem,
    FunctionOut,
    RevisionItem,
    UpdateFunctionRequest,
)
from app.schemas.paging import Meta, Page, Paginated
from app.services.model_catalog import ModelCatalog
from app.services.task_builder import check_definition_parts, model_names
from app.store.functions import FunctionDefinition, FunctionPatch, FunctionRecord, FunctionRepository, FunctionSort
from app.store.projects import ProjectRef

SORTS: tuple[str, ...] = get_args(FunctionSort)
DEFAULT_SORT: FunctionSort = "-created_at"


def _missing(function_id: str) -> NotFound:
    return NotFound("function not found", detail=f"function_id: no function {function_id} in this project")


@dataclass
class FunctionService:
    functions: FunctionRepository
    resolver: ModelResolver
    default_model: str
    catalog: ModelCatalog | None = None  # lets a definition name an alias or a custom model

    def _check(self, project: ProjectRef, body: CreateFunctionRequest | UpdateFunctionRequest) -> None:
        check_definition_parts(
            expand=self.catalog.expander(project.id, model_names(body.model)) if self.catalog is not None else None,
            resolver=self.resolver,
            default_model=self.default_model,
            input_schema=body.input_schema,
            output_schema=body.output_schema,
            model=body.model,
            configuration=body.configuration,
        )

    def create(self, project: ProjectRef, body: CreateFunctionRequest) -> FunctionOut:
        self._check(project, body)
        return FunctionOut.of(self.functions.create(project.id, body.name, body.definition()))

    def list(self, project: ProjectRef, name: str | None, sort: str | None, page: Page) -> Paginated[FunctionListItem]:
        sort = sort or DEFAULT_SORT
        if sort not in SORTS:
            raise BadRequest(f"must be one of {', '.join(SORTS)}", field_name="sort")
        records, total = self.functions.list(project.id, name=name, sort=sort, offset=page.offset, limit=page.limit)
        items = [FunctionListItem.of(record) for record in records]
        return Paginated[FunctionListItem](meta=Meta(total_count=total), data=items)

    def get(self, project: ProjectRef, function_id: str) -> FunctionOut:
        return FunctionOut.of(self._get(project, function_id))

    def _get(self, project: ProjectRef, function_id: str) -> FunctionRecord:
        record = self.functions.get(project.id, function_id)
        if record is None:
            raise _missing(function_id)
        return record

    def get_by_name(self, project: ProjectRef, name: str) -> FunctionOut:
        record = self.functions.get_by_name(project.id, name)
        if record is None:
            raise NotFound("function not found", detail=f"name: no function named {name!r} in this project")
        return FunctionOut.of(record)

    def update(self, project: ProjectRef, function_id: str, body: UpdateFunctionRequest) -> FunctionOut:
        """Fields sent replace the current ones (null clears; name and instructions cannot be null)."""
        sent = frozenset(body.model_fields_set)
        for required in ("name", "instructions"):
            if required in sent and getattr(body, required) is None:
                raise BadRequest("cannot be null; leave it out to keep the current value", field_name=required)
        self._check(project, body)
        data = body.model_dump(mode="json", exclude={"name"})
        data["instructions"] = data["instructions"] or ""
        patch = FunctionPatch(values=FunctionDefinition(**data), name=body.name, fields=sent)
        record = self.functions.update(project.id, function_id, patch)
        if record is None:
            raise _missing(function_id)
        return FunctionOut.of(record)

    def delete(self, project: ProjectRef, function_id: str) -> None:
        if not self.functions.delete(project.id, function_id):
            raise _missing(function_id)

    def revisions(self, project: ProjectRef, function_id: str, page: Page) -> Paginated[RevisionItem]:
        found = self.functions.revisions(project.id, function_id, offset=page.offset, limit=page.limit)
        if found is None:
            raise _missing(function_id)
        revisions, total = found
        items = [RevisionItem.of(revision) for revision in revisions]
        return Paginated[RevisionItem](meta=Meta(total_count=total), data=items)

    def revision(self, project: ProjectRef, function_id: str, revision_id: str) -> FunctionOut:
        record = self.functions.at_revision(project.id, function_id, revision_id)
        if record is None:
            self._get(project, function_id)  # 404 naming the function when that is what is missing
            raise NotFound("revision not found", detail=f"revision_id: no revision {revision_id} of this function")
        return FunctionOut.of(record)
