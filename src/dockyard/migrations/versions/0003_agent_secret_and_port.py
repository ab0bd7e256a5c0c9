"""agent secret per workspace, agent port per server

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("agent_secret_ciphertext", sa.Text(), nullable=False, server_default="")
        )
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("agent_port", sa.Integer(), nullable=False, server_default="8421")
        )


def downgrade() -> None:
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_column("agent_port")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_column("agent_secret_ciphertext")
