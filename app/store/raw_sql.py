"""Prebuilt SQLAlchemy Core statements sent by psycopg itself, from an event loop (Postgres only).

The hot path's statements are defined once, with SQLAlchemy, beside the rest of the store. Executing
them through SQLAlchemy on a pooled thread costs more CPU than the statement's own round trip: the
hop to the thread and back, the checkout, the execution context, result processing (measured: the
API's job INSERT 0.8 ms of CPU that way, 0.3 ms here). Here a statement is compiled once for psycopg's
parameter style, and each execution only fills in its parameters with SQLAlchemy's own conversions
for their types (JSON, enums, UTC datetimes), so what reaches Postgres is what SQLAlchemy would send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = psycopg_dialect.dialect()


@dataclass(frozen=True)
class RawStatement:
    compiled: SQLCompiler
    sql: str

    @classmethod
    def of(cls, statement: Any) -> RawStatement:
        compiled = statement.compile(dialect=_DIALECT)
        return cls(compiled, compiled.string)

    def params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The statement's parameters for `values`, converted as SQLAlchemy converts them."""
        params = self.compiled.construct_params(dict(values))
        # SQLAlchemy's per-type conversions for this dialect (no public accessor exists for them).
        for key, process in self.compiled._bind_processors.items():  # noqa: SLF001
            if key in params:
                params[key] = process(params[key])
        return params


def conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy URL (its query, e.g. `options` and `application_name`, kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
