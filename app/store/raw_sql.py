"""Prebuilt SQLAlchemy Core statements sent by psycopg itself (Postgres only): the API's job INSERT
from its event loop, and the worker's claims and endings on its database threads.

The hot path's statements are defined once, with SQLAlchemy, beside the rest of the store. Executing
them through SQLAlchemy costs more CPU than the statement's own round trip: the execution context and
result processing around each statement, and on the API a hop to a pooled thread and back (measured:
the API's job INSERT 0.8 ms of CPU that way, 0.3 ms here; a worker's claim 0.40 ms, 0.16 ms here as one
statement in autocommit). Here a statement is compiled once for psycopg's parameter style, and each
execution only fills in its parameters with SQLAlchemy's own conversions for their types (JSON, enums,
UTC datetimes), so what reaches Postgres is what SQLAlchemy would send.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, Table, insert
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Executable

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


@contextmanager
def _pooled_driver(engine: Engine) -> Iterator[psycopg.Connection]:
    """The psycopg connection of one of `engine`'s pooled connections; one whose error was the
    connection's own leaves the pool."""
    with engine.connect() as connection:
        try:
            yield connection.connection.driver_connection
        except psycopg.OperationalError as error:
            connection.invalidate(error)
            raise


@contextmanager
def autocommit_driver(engine: Engine) -> Iterator[psycopg.Connection]:
    """A pooled psycopg connection in autocommit mode: a statement that is its own transaction costs one
    round trip, where a transaction costs three (psycopg sends BEGIN before its first statement, then
    COMMIT)."""
    with _pooled_driver(engine) as driver:
        driver.autocommit = True
        try:
            yield driver
        finally:
            if not driver.closed:
                driver.autocommit = False


class DriverTransaction:
    """Core statements sent by psycopg in one transaction (`driver_transaction`), each compiled once:
    the part of a Core `Connection` that the worker's endings use (app/store/jobs.py), without
    SQLAlchemy's execution context and result processing around each statement."""

    def __init__(self, driver: psycopg.Connection) -> None:
        self.driver = driver

    def first(self, statement: Executable, values: Mapping[str, Any]) -> Any:
        """The first row `statement` returns, or None."""
        rows = returned_rows(self.driver, compiled(statement), values)
        return rows[0] if rows else None

    def execute(self, statement: Executable, values: Mapping[str, Any]) -> None:
        """As `Connection.execute`, for code written for either (app/store/batch_counters.py)."""
        raw = compiled(statement)
        self.driver.execute(raw.sql, raw.params(values))

    def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """One executemany INSERT of `rows` (every column's value given)."""
        raw = compiled(insert_all(table))
        with self.driver.cursor() as cursor:
            cursor.executemany(raw.sql, [raw.params(row) for row in rows])


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[DriverTransaction]:
    """A transaction on one of `engine`'s pooled connections, committed on success, rolled back on an
    error."""
    with _pooled_driver(engine) as driver, driver.transaction():
        yield DriverTransaction(driver)


@cache
def compiled(statement: Executable) -> RawStatement:
    """A module-level Core statement compiled once."""
    return RawStatement.of(statement)


@cache
def insert_all(table: Table) -> Executable:
    """An INSERT of every column of `table`: one object per table, so `compiled` compiles it once."""
    return insert(table)


def returned_rows(driver: psycopg.Connection, statement: RawStatement, values: Mapping[str, Any]) -> list[Any]:
    """The rows `statement` returns (named tuples, as a Core result's rows read)."""
    with driver.cursor(row_factory=namedtuple_row) as cursor:
        return cursor.execute(statement.sql, statement.params(values)).fetchall()


def conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy URL (its query, e.g. `options` and `application_name`, kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
