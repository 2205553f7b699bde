"""an index for finding queued interactive jobs whose broker message may never have been sent

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WHERE = "status = 'queued' AND batch_id IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_interactive_queued",
        "jobs",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text(_WHERE),
        sqlite_where=sa.text(_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_interactive_queued", table_name="jobs")
