"""Jobs' endings written from the worker's event loop, for Postgres: `JobRepository.finish_many` as
psycopg sends it, without a hop to a database thread and back (about 0.2 ms of CPU per job).

The same statements and the same plan (store/jobs.py: FINISH, `plan_ending`, the batch stripes'
moves), so one definition of what an ending writes; only how it is sent differs (store/raw_sql.py
says why). SQLite workers keep the threaded `finish_many`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Table

from app.store import batch_counters
from app.store.batch_counters import CounterDelta
from app.store.job_records import Finish
from app.store.jobs import FINISH, finish_params, plan_ending
from app.store.raw_sql import RawStatement, conninfo, insert_into
from app.store.rows import row_of
from app.store.tables import Base, JobStatus, utcnow

_FINISH = RawStatement.of(FINISH)
_MOVES: dict[int, RawStatement] = {}


def _move_statement(statement: Any) -> RawStatement:
    raw = _MOVES.get(id(statement))
    if raw is None:
        raw = _MOVES[id(statement)] = RawStatement.of(statement)
    return raw


class AsyncEndings:
    def __init__(self, database_url: str, *, max_size: int = 10) -> None:
        self.pool = AsyncConnectionPool(
            conninfo(database_url), min_size=1, max_size=max_size, kwargs={"row_factory": namedtuple_row}, open=False
        )

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    async def finish_many(self, finishes: Sequence[Finish]) -> list[bool]:
        """`JobRepository.finish_many`: one durable transaction, each ending only where its lease holds."""
        now = utcnow()
        written: list[bool] = []
        rows: list[Base] = []
        moves: dict[tuple[str, int], CounterDelta] = {}
        async with self.pool.connection() as connection, connection.transaction():
            for finish in finishes:
                cursor = await connection.execute(_FINISH.sql, _FINISH.params(finish_params(finish, now)))
                ended = await cursor.fetchone()
                written.append(ended is not None)
                if ended is not None:
                    plan_ending(JobStatus.running, finish, ended, rows, moves)
            for table, table_rows in _by_table(rows).items():
                insert = insert_into(table)
                async with connection.cursor() as cursor:
                    await cursor.executemany(insert.sql, [insert.params(row) for row in table_rows])
            for (batch_id, stripe), delta in sorted(moves.items()):  # sorted: see batch_counters.add_moves
                move = batch_counters.stripe_move(batch_id, stripe, delta)
                if move is not None:
                    statement, params = move
                    raw = _move_statement(statement)
                    await connection.execute(raw.sql, raw.params(params))
        return written


def _by_table(objects: list[Base]) -> dict[Table, list[dict[str, Any]]]:
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for obj in objects:
        by_table.setdefault(obj.__table__, []).append(row_of(obj))
    return by_table
