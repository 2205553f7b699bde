"""Imports every table module so `Base.metadata` (Alembic autogenerate, tests) sees all tables."""

from app.store import (  # noqa: F401
    tables,
    tables_batches,
    tables_delivery,
    tables_functions,
    tables_models,
    tables_observability,
    tables_provider_batches,
)
from app.store.tables import Base

metadata = Base.metadata
