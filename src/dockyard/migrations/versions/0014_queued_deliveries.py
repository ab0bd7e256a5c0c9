"""webhook deliveries keep a pull request's action (opened, updated, closed), so that one
queued while its service was being deployed can be acted on when that deployment ends

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('hook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('action', sa.String(length=20), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('hook_deliveries', schema=None) as batch_op:
        batch_op.drop_column('action')
