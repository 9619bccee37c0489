"""email: domains claimed and verified by DNS, SMTP security policies

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 05:17:53.107934
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import conduit.kit.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_domains",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("verification_token", sa.String(length=64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("verified_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_email_domains_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_domains")),
        sa.UniqueConstraint("name", name=op.f("uq_email_domains_name")),
    )
    with op.batch_alter_table("email_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_domains_account_id"), ["account_id"], unique=False)

    op.create_table(
        "smtp_policies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("require_spf", sa.Boolean(), nullable=False),
        sa.Column(
            "allowed_spf_domains",
            sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"),
            nullable=False,
        ),
        sa.Column("require_dkim", sa.Boolean(), nullable=False),
        sa.Column(
            "allowed_dkim_domains",
            sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "allowed_source_ips",
            sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"),
            nullable=False,
        ),
        sa.Column("require_smtp_auth", sa.Boolean(), nullable=False),
        sa.Column("smtp_username", sa.String(length=128), nullable=True),
        sa.Column("smtp_password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_smtp_policies_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smtp_policies")),
    )
    with op.batch_alter_table("smtp_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_smtp_policies_account_id"), ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("smtp_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_smtp_policies_account_id"))

    op.drop_table("smtp_policies")
    with op.batch_alter_table("email_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_domains_account_id"))

    op.drop_table("email_domains")
