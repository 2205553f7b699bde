"""batches area: batches, their striped counters, and the batch columns of jobs

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_STATUS = sa.Enum(
    "validating",
    "running",
    "completed",
    "cancelling",
    "cancelled",
    "failed",
    name="batchstatus",
    native_enum=False,
    length=16,
)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> sa.types.TypeEngine:
    return app.store.tables.UTCDateTime(timezone=True)


def _partial(condition: str) -> dict:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("function_id", sa.String(length=36), nullable=True),
        sa.Column("revision_id", sa.String(length=36), nullable=True),
        sa.Column("task_template", _json(), nullable=False),
        sa.Column("anchor_job_id", sa.String(length=36), nullable=True),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("meta", _json(), nullable=True),
        sa.Column("completion_window", sa.String(length=32), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("invalid_count", sa.Integer(), nullable=False),
        sa.Column("invalid_items", _json(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("cancel_requested_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batches_project_created", "batches", ["project_id", "created_at"], unique=False)
    op.create_index("ix_batches_status", "batches", ["status"], unique=False)

    op.create_table(
        "batch_counters",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("stripe", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_generation", sa.Float(), nullable=False),
        sa.Column("cost_platform", sa.Float(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("batch_id", "stripe"),
    )

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("batch_seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("custom_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("dispatched_at", _utc(), nullable=True))
    op.create_index(
        "ix_jobs_batch_status",
        "jobs",
        ["batch_id", "status", "batch_seq"],
        unique=False,
        **_partial("batch_id IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_batch_seq", "jobs", ["batch_id", "batch_seq"], unique=True, **_partial("batch_id IS NOT NULL")
    )
    op.create_index(
        "ix_jobs_batch_dispatched",
        "jobs",
        ["batch_id", "dispatched_at"],
        unique=False,
        **_partial("dispatched_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_batch_dispatched", table_name="jobs")
    op.drop_index("ix_jobs_batch_seq", table_name="jobs")
    op.drop_index("ix_jobs_batch_status", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("dispatched_at")
        batch_op.drop_column("custom_id")
        batch_op.drop_column("batch_seq")
        batch_op.drop_column("batch_id")
    op.drop_table("batch_counters")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_index("ix_batches_project_created", table_name="batches")
    op.drop_table("batches")
