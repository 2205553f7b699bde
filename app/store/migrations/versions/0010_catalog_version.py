"""a project's catalog version: bumped with every change to its functions, aliases and custom models

Revision ID: 0010_catalog_version
Revises: 0009_provider_batches
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_catalog_version"
down_revision = "0009_provider_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("catalog_version", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("projects", "catalog_version")
