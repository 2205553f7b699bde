"""observability: span metrics

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import app.store.tables

revision = "0003"
down_revision = "0001"
branch_labels = ("observability",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "span_metrics",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("span_id", sa.String(length=36), nullable=False),
        sa.Column("dimension", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", app.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["span_id"], ["spans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("span_id", "dimension", name="uq_span_metrics_span_dimension"),
    )
    with op.batch_alter_table("span_metrics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_span_metrics_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("span_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_span_metrics_project_id"))
    op.drop_table("span_metrics")
