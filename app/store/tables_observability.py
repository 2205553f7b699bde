"""Tables of the observability area (issue work in progress); `Base` is shared with app/store/tables.py."""

from app.store.tables import Base  # noqa: F401
