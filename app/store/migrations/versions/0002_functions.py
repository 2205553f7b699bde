"""functions area: datasets, dataset entries, span feedback

Revision ID: 0002
Revises: 0001
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = ("functions",)
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> sa.types.TypeEngine:
    return app.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("function_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["function_id"], ["functions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("function_id"),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index("ix_datasets_project_id", ["project_id"], unique=False)

    op.create_table(
        "dataset_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("input", _json(), nullable=True),
        sa.Column("output", _json(), nullable=True),
        sa.Column("expected", _json(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source_span_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_id", "source_span_id", name="uq_dataset_entries_dataset_span"),
    )
    with op.batch_alter_table("dataset_entries", schema=None) as batch_op:
        batch_op.create_index("ix_dataset_entries_dataset_created", ["dataset_id", "created_at"], unique=False)

    op.create_table(
        "span_feedback",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("span_id", sa.String(length=36), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("example_saved", sa.Boolean(), nullable=False),
        sa.Column("dataset_entry_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["span_id"], ["spans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("span_feedback", schema=None) as batch_op:
        batch_op.create_index("ix_span_feedback_project_id", ["project_id"], unique=False)
        batch_op.create_index("ix_span_feedback_span_created", ["span_id", "created_at"], unique=False)

    _backfill_datasets()


def _backfill_datasets() -> None:
    """Functions created before this revision get their dataset now (new ones get it at creation)."""
    connection = op.get_bind()
    functions = sa.table("functions", sa.column("id", sa.String), sa.column("project_id", sa.String))
    datasets = sa.table(
        "datasets",
        sa.column("id", sa.String),
        sa.column("project_id", sa.String),
        sa.column("function_id", sa.String),
        sa.column("created_at", _utc()),
    )
    now = datetime.now(UTC)
    rows = [
        {"id": str(uuid.uuid4()), "project_id": row.project_id, "function_id": row.id, "created_at": now}
        for row in connection.execute(sa.select(functions.c.id, functions.c.project_id))
    ]
    if rows:
        connection.execute(datasets.insert(), rows)


def downgrade() -> None:
    with op.batch_alter_table("span_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_span_feedback_span_created")
        batch_op.drop_index("ix_span_feedback_project_id")
    op.drop_table("span_feedback")
    with op.batch_alter_table("dataset_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_dataset_entries_dataset_created")
    op.drop_table("dataset_entries")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_datasets_project_id")
    op.drop_table("datasets")
