"""email: inbound messages held between the SMTP `250` and their webhook deliveries; include_raw

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import conduit.kit.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_inbound_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("envelope", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False),
        sa.Column("routes", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False),
        sa.Column("auth", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False),
        sa.Column("received_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_inbound_messages")),
    )
    with op.batch_alter_table("email_webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("include_raw", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("email_webhooks", schema=None) as batch_op:
        batch_op.drop_column("include_raw")
    op.drop_table("email_inbound_messages")
