"""email: include_raw on email webhooks (the whole message, base64, in the payload)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("email_webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("include_raw", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("email_webhooks", schema=None) as batch_op:
        batch_op.drop_column("include_raw")
