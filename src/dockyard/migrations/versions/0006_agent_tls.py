"""agent TLS: the pinned certificate fingerprint of each server's agent, or plain HTTP

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_fingerprint", sa.String(95), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("agent_insecure_http", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_column("agent_insecure_http")
        batch_op.drop_column("agent_fingerprint")
