"""trace context: the propagation headers of the request that submitted a job or a batch

`jobs.trace_context` and `batches.trace_context` hold, as JSON text, the trace context (`traceparent`, and
whatever else `OTEL_PROPAGATORS` writes) of the API request span that submitted the job or the batch,
when the API exports traces; null otherwise. A worker parents every run of a job on it (or, for a batch
item, links to its batch's), however its message was sent: first, deferred, re-sent after a crash.

Revision ID: 0012_trace_context
Revises: 0011_secrets_at_rest
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_trace_context"
down_revision = "0011_secrets_at_rest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("trace_context", sa.Text(), nullable=True))
    op.add_column("batches", sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("batches", "trace_context")
    op.drop_column("jobs", "trace_context")
