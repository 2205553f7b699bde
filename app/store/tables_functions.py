"""Tables of the functions area (issue work in progress); `Base` is shared with app/store/tables.py."""

from app.store.tables import Base  # noqa: F401
