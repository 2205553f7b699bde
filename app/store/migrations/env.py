"""Alembic environment: runs migrations against the URL handed over by `app.store.db`."""

from alembic import context
from sqlalchemy import create_engine, pool, text

from app.store.all_tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch ALTERs
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # API and worker processes may start together: let one migrate, the others wait.
                connection.execute(text("SELECT pg_advisory_xact_lock(720417)"))
            context.run_migrations()


run_migrations_online()
