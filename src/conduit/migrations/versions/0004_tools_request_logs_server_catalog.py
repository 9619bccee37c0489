"""tools, request logs, server catalog

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 02:58:23.316670
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import conduit.kit.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_logs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("server_id", sa.String(length=32), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=128), nullable=False),
        sa.Column("tool", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("request_bytes", sa.Integer(), nullable=False),
        sa.Column("response_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_logs")),
    )
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.create_index("ix_request_logs_org_id_created_at", ["org_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_request_logs_server_id_created_at", ["server_id", "created_at"], unique=False
        )

    op.create_table(
        "tools",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("server_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column(
            "definition", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False
        ),
        sa.Column("definition_hash", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("description_override", sa.Text(), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("when_to_use", sa.Text(), nullable=True),
        sa.Column("when_not_to_use", sa.Text(), nullable=True),
        sa.Column("removed_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"], ["servers.id"], name=op.f("fk_tools_server_id_servers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tools")),
        sa.UniqueConstraint("server_id", "name", name=op.f("uq_tools_server_id_name")),
    )
    with op.batch_alter_table("tools", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tools_server_id"), ["server_id"], unique=False)

    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "catalog",
                sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )
        batch_op.add_column(
            sa.Column("catalog_status", sa.String(length=24), nullable=False, server_default="unknown")
        )
        batch_op.add_column(sa.Column("catalog_error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("discovered_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_health_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_column("last_health_at")
        batch_op.drop_column("discovered_at")
        batch_op.drop_column("catalog_error")
        batch_op.drop_column("catalog_status")
        batch_op.drop_column("catalog")

    with op.batch_alter_table("tools", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tools_server_id"))

    op.drop_table("tools")
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_request_logs_server_id_created_at")
        batch_op.drop_index("ix_request_logs_org_id_created_at")

    op.drop_table("request_logs")
