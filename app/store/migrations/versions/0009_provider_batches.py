"""provider batches: a batch's execution mode, its requests sent through providers' batch APIs, and an
index for listing a project's interactive jobs

Revision ID: 0009_provider_batches
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.tables

revision = "0009_provider_batches"
down_revision = "0008"
branch_labels = None
depends_on = None

_STATE = sa.Enum(
    "preparing", "submitted", "collected", "cancelled", name="providerbatchstate", native_enum=False, length=16
)


def _utc() -> sa.types.TypeEngine:
    return app.store.tables.UTCDateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("batches", sa.Column("execution", sa.String(length=16), nullable=True))
    # A batch's webhook is the batch's: its secrets move from its anchor item, its delivery names it.
    op.add_column("batches", sa.Column("webhook_secrets", _json(), nullable=True))
    op.execute(
        "UPDATE batches SET webhook_secrets = (SELECT jobs.webhook_secrets FROM jobs WHERE jobs.id = batches.anchor_job_id)"
        " WHERE anchor_job_id IS NOT NULL"
    )
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.alter_column("job_id", existing_type=sa.String(length=36), nullable=True)
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            "fk_webhook_deliveries_batch_id_batches", "batches", ["batch_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_unique_constraint("uq_webhook_deliveries_batch", ["batch_id"])
    op.create_table(
        "provider_batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=512), nullable=False),
        sa.Column("state", _STATE, nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("external_state", sa.String(length=64), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_provider_batches_batch", "provider_batches", ["batch_id"], unique=False)
    op.create_index("ix_provider_batches_state", "provider_batches", ["state"], unique=False)
    op.create_table(
        "provider_batch_items",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("provider_batch_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["provider_batch_id"], ["provider_batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_provider_batch_items_pbatch", "provider_batch_items", ["provider_batch_id"], unique=False)
    op.create_index(
        "ix_jobs_project_created_interactive",
        "jobs",
        ["project_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NULL"),
        sqlite_where=sa.text("batch_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_project_created_interactive", table_name="jobs")
    op.drop_index("ix_provider_batch_items_pbatch", table_name="provider_batch_items")
    op.drop_table("provider_batch_items")
    op.drop_index("ix_provider_batches_state", table_name="provider_batches")
    op.drop_index("ix_provider_batches_batch", table_name="provider_batches")
    op.drop_table("provider_batches")
    op.execute("DELETE FROM webhook_deliveries WHERE job_id IS NULL")  # batches' deliveries cannot go back
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.drop_constraint("uq_webhook_deliveries_batch", type_="unique")
        batch_op.drop_constraint("fk_webhook_deliveries_batch_id_batches", type_="foreignkey")
        batch_op.drop_column("batch_id")
        batch_op.alter_column("job_id", existing_type=sa.String(length=36), nullable=False)
    op.drop_column("batches", "webhook_secrets")
    op.drop_column("batches", "execution")
