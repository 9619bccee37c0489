"""email: email webhooks (an address routed to a webhook endpoint)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import conduit.kit.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_webhooks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("address_key", sa.String(length=320), nullable=False),
        sa.Column("payload_template", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("smtp_security_policy_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_email_webhooks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_email_webhooks_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["smtp_security_policy_id"],
            ["smtp_policies.id"],
            name=op.f("fk_email_webhooks_smtp_security_policy_id_smtp_policies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_webhooks")),
        sa.UniqueConstraint("address_key", name=op.f("uq_email_webhooks_address_key")),
        sa.UniqueConstraint("endpoint_id", name=op.f("uq_email_webhooks_endpoint_id")),
    )
    with op.batch_alter_table("email_webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_webhooks_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_email_webhooks_smtp_security_policy_id"), ["smtp_security_policy_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_webhooks_smtp_security_policy_id"))
        batch_op.drop_index(batch_op.f("ix_email_webhooks_account_id"))

    op.drop_table("email_webhooks")
