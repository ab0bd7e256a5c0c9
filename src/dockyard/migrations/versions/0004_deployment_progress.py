"""deployment phase and progress; one active deployment per service

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phase", sa.String(20), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=False, server_default="{}"))
    op.create_index("uq_deployments_one_active", "deployments", ["service_id"], unique=True,
                    sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)


def downgrade() -> None:
    op.drop_index("uq_deployments_one_active", table_name="deployments")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("progress")
        batch_op.drop_column("phase")
