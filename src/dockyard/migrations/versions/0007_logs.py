"""logs: the lines every container of a service wrote, and how far each server was read

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _foreign_key(column: str, table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{table}.id"], ondelete=ondelete,
                                   name=op.f(f"fk_log_lines_{column}_{table}"))


def upgrade() -> None:
    op.create_table(
        "log_lines",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("server_id", sa.String(length=32), nullable=True),
        sa.Column("server_name", sa.String(length=63), nullable=False),
        sa.Column("process_type", sa.String(length=40), nullable=False),
        sa.Column("replica", sa.Integer(), nullable=False),
        sa.Column("release", sa.String(length=32), nullable=False),
        sa.Column("container", sa.String(length=128), nullable=False),
        sa.Column("stream", sa.String(length=6), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        _foreign_key("workspace_id", "workspaces", "CASCADE"),
        _foreign_key("service_id", "services", "CASCADE"),
        _foreign_key("server_id", "servers", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_lines")),
    )
    with op.batch_alter_table("log_lines", schema=None) as batch_op:
        for column in ("workspace_id", "service_id", "server_id", "release"):
            batch_op.create_index(batch_op.f(f"ix_log_lines_{column}"), [column], unique=False)
        batch_op.create_index("ix_log_lines_service_time", ["service_id", "time"], unique=False)
    op.create_table(
        "log_cursors",
        sa.Column("server_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("lost", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"], ondelete="CASCADE",
                                name=op.f("fk_log_cursors_server_id_servers")),
        sa.PrimaryKeyConstraint("server_id", name=op.f("pk_log_cursors")),
    )


def downgrade() -> None:
    op.drop_table("log_cursors")
    op.drop_table("log_lines")
