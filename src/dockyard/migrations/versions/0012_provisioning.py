"""provisioning on DigitalOcean: Dockyard snapshots, one-time snapshot build tokens, and the
cloud-init version each provisioned server booted with

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 11:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _common(table: str) -> list[Any]:
    return [
        sa.Column('workspace_id', sa.String(length=32), nullable=False),
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
                                name=op.f(f'fk_{table}_workspace_id_workspaces'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}')),
    ]


def upgrade() -> None:
    op.create_table('snapshots',
    sa.Column('provider_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('agent_version', sa.String(length=60), nullable=False),
    sa.Column('requirements_digest', sa.String(length=64), nullable=False),
    sa.Column('cloud_init_version', sa.Integer(), nullable=False),
    *_common('snapshots'),
    sa.UniqueConstraint('workspace_id', 'provider_id',
                        name=op.f('uq_snapshots_workspace_id_provider_id'))
    )
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_snapshots_workspace_id'), ['workspace_id'],
                              unique=False)

    op.create_table('snapshot_builds',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    *_common('snapshot_builds'),
    sa.UniqueConstraint('token_hash', name=op.f('uq_snapshot_builds_token_hash'))
    )
    with op.batch_alter_table('snapshot_builds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_snapshot_builds_workspace_id'), ['workspace_id'],
                              unique=False)

    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cloud_init_version', sa.Integer(), nullable=False,
                                      server_default=sa.text('0')))


def downgrade() -> None:
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.drop_column('cloud_init_version')
    with op.batch_alter_table('snapshot_builds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshot_builds_workspace_id'))
    op.drop_table('snapshot_builds')
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshots_workspace_id'))
    op.drop_table('snapshots')
