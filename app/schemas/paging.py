"""The `{meta: {total_count}, data}` list envelope and bounded offset/limit paging."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from app.errors import BadRequest

T = TypeVar("T")
MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1  # the largest OFFSET PostgreSQL and SQLite take (a signed 64-bit integer)


class Meta(BaseModel):
    total_count: int


class Paginated(BaseModel, Generic[T]):
    meta: Meta
    data: list[T]


class Page(BaseModel):
    offset: int = 0
    limit: int = 100


def page_params(
    offset: Annotated[int, Query(description=f"Items to skip, at most {MAX_OFFSET}")] = 0,
    limit: Annotated[int, Query(description=f"Items to return, at most {MAX_LIMIT}")] = 100,
) -> Page:
    if not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"must be from 0 to {MAX_OFFSET}", field_name="offset")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"must be from 1 to {MAX_LIMIT}", field_name="limit")
    return Page(offset=offset, limit=limit)


PageParams = Annotated[Page, Depends(page_params)]


def paginated(items: list[T], total: int) -> dict:
    """Build the envelope; handlers return it through `response_model=Paginated[Item]`."""
    return {"meta": {"total_count": total}, "data": items}
