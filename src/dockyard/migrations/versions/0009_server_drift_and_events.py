"""server drift and events: what a server's node runs that differs from what it should, and
the corrections the reconciler made there

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drift", sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))
    op.create_table(
        "server_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("server_id", sa.String(length=32), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"], ondelete="CASCADE",
                                name=op.f("fk_server_events_server_id_servers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_events")),
    )
    with op.batch_alter_table("server_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_server_events_server_id"), ["server_id"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("server_events")
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_column("drift")
