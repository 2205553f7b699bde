"""secrets at rest: webhook signing secrets encrypted with CONVEYOR_SECRET_KEY; API key prefixes cleared

Webhook secrets of jobs and batches were stored as given (`whsec_...`). With a secret key configured
(handed over by `run_migrations`, else CONVEYOR_SECRET_KEY from the environment) each is replaced by its
Fernet token, as custom models' API keys are stored (app/secrets.py); without one they stay as they are,
and stay readable (a `whsec_` value is taken as plain).

`api_keys.prefix` held a key's first 8 characters, the whole of a short configured key. The keys are
stored hashed, so which prefixes belong to long keys cannot be told: all are cleared. A new long key
keeps a prefix (app/store/projects.py `key_prefix`).

Revision ID: 0011_secrets_at_rest
Revises: 0010_catalog_version
"""

import json
import os

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from app.secrets import SecretBox

revision = "0011_secrets_at_rest"
down_revision = "0010_catalog_version"
branch_labels = None
depends_on = None

_PLAIN = "whsec_"
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TABLES = ("jobs", "batches")


def _box() -> SecretBox | None:
    secret = op.get_context().config.attributes.get("secret_key") or os.environ.get("CONVEYOR_SECRET_KEY", "")
    return SecretBox(secret) if secret else None


def _rewrite(box: SecretBox, change) -> None:  # noqa: ANN001 - str -> str for each stored secret
    bind = op.get_bind()
    for name in _TABLES:
        table = sa.table(name, sa.column("id", sa.String), sa.column("webhook_secrets", _JSON))
        rows = bind.execute(sa.select(table.c.id, table.c.webhook_secrets).where(table.c.webhook_secrets.isnot(None)))
        for row_id, stored in rows.all():
            values = json.loads(stored) if isinstance(stored, str) else stored
            rewritten = [change(box, value) for value in values]
            if rewritten != values:
                bind.execute(table.update().where(table.c.id == row_id).values(webhook_secrets=rewritten))


def _seal(box: SecretBox, value: str) -> str:
    return box.encrypt(value) if value.startswith(_PLAIN) else value


def _open(box: SecretBox, value: str) -> str:
    return value if value.startswith(_PLAIN) else box.decrypt(value)


def upgrade() -> None:
    op.execute(sa.text("UPDATE api_keys SET prefix = ''"))
    box = _box()
    if box is not None:
        _rewrite(box, _seal)


def downgrade() -> None:
    box = _box()
    if box is not None:
        _rewrite(box, _open)
