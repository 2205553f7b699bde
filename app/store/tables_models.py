"""Tables of the models area: a project's custom models and model aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.tables import Base, JSONType, UTCDateTime, new_id, utcnow


class CustomModel(Base):
    """An OpenAI-compatible endpoint registered under a name usable as a `model` value.

    `api_key_encrypted` is a Fernet token (see app/secrets.py); the plain key is never stored."""

    __tablename__ = "custom_models"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_custom_models_project_name"),
        Index("ix_custom_models_project_created", "project_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    identifier: Mapped[str] = mapped_column(String(300))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelAlias(Base):
    """A name that expands into an ordered list of fallback models (names, aliases or custom models)."""

    __tablename__ = "model_aliases"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_model_aliases_project_name"),
        Index("ix_model_aliases_project_created", "project_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    fallback_models: Mapped[list[str]] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
