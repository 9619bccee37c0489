"""server logs: stderr of stdio upstreams

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 04:34:22.610217
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import conduit.kit.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_logs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("server_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("stream", sa.String(length=16), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", conduit.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_logs")),
    )
    with op.batch_alter_table("server_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_server_logs_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_server_logs_server_id_id", ["server_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("server_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_server_logs_server_id_id")
        batch_op.drop_index(batch_op.f("ix_server_logs_created_at"))

    op.drop_table("server_logs")
