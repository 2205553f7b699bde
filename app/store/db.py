"""Engine and session factory, and the Alembic upgrade that runs at start-up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import PoolTimeout
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# A pooled connection idle this long is checked (a round trip) before it is handed out; one in steady
# use is not. A ping on every checkout cost each statement a round trip; a connection that died while
# in use (a database restart) fails its statement once, and the pool then replaces all connections
# made before the failure (SQLAlchemy's invalidation on disconnect).
PING_AFTER_IDLE_SECONDS = 2.0

# The database refused, dropped or had no connection to give (down, restarting, out of connections):
# SQLAlchemy's errors, and psycopg's own from the API's async job writer (store/async_jobs.py).
DATABASE_UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, psycopg.OperationalError, PoolTimeout)


def make_engine(database_url: str, *, pool_size: int = 20, relaxed: bool = False) -> Engine:
    """`relaxed`: a Postgres engine whose commits do not wait for the WAL flush (see Database.relaxed)."""
    if database_url.startswith("sqlite"):
        _ensure_sqlite_dir(database_url)
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A worker holds many calls in flight but touches the database only briefly around each one,
    # so a modest pool with overflow serves hundreds of threads.
    engine = create_engine(database_url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=60)
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    if relaxed:
        event.listen(engine, "connect", _asynchronous_commit)
    return engine


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect recipe, for connections that sat idle a while."""
    if time.monotonic() - record.info.get("checked_in_at", 0.0) < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as error:  # the pool discards it and tries another (up to three times)
        raise exc.DisconnectionError() from error


def _asynchronous_commit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


def _ensure_sqlite_dir(database_url: str) -> None:
    path = database_url.split("///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI objects
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Owns the engines and hands out short transactions."""

    def __init__(self, database_url: str, *, pool_size: int = 20) -> None:
        self.url = database_url
        self.pool_size = pool_size
        self.engine = make_engine(database_url, pool_size=pool_size)
        self._relaxed: Engine | None = None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def relaxed_engine(self) -> Engine:
        """For writes a re-run repairs (claims, lease renewals, the row of a call whose caller waits for
        its durable result): on Postgres its commits return before the WAL is flushed to disk, which
        saves an fsync per statement, and a later durable commit flushes them too, WAL being written in
        order. A database crash may lose the last fraction of a second of them. SQLite: the one engine."""
        if self.engine.dialect.name != "postgresql":
            return self.engine
        if self._relaxed is None:
            self._relaxed = make_engine(self.url, pool_size=max(2, self.pool_size // 2), relaxed=True)
        return self._relaxed

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in a transaction that commits on success: for hot paths that need no ORM."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A Core connection where each statement commits on its own: one round trip per statement."""
        with self.engine.connect() as connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def relaxed_connection(self) -> Iterator[Connection]:
        """`connection()` on the relaxed engine: a transaction whose commit does not wait for the disk."""
        with self.relaxed_engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        if self._relaxed is not None:
            self._relaxed.dispose()


def alembic_config(database_url: str) -> Config:
    # Imported here: a process started with --no-migrate (API and workers beside a migrated database)
    # never loads alembic, 0.11-0.16 s of its start-up (measured).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def run_migrations(database_url: str, *, secret_key: str = "") -> None:
    """Bring the schema to the newest revision (idempotent; safe to run at every start-up). `secret_key`
    (CONVEYOR_SECRET_KEY; else read from the environment) encrypts stored secrets (0011_secrets_at_rest).

    `heads`, not `head`: areas of the schema may be added as parallel branches off one base revision."""
    from alembic import command

    config = alembic_config(database_url)
    config.attributes["secret_key"] = secret_key
    command.upgrade(config, "heads")
