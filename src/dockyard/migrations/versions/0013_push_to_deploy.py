"""push to deploy: services linked to forge repositories, the webhook deliveries they got,
and preview environments (a service previewing another for one pull request)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 15:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
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
    op.create_table('repo_links',
    sa.Column('service_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('repo_url', sa.String(length=1000), nullable=False),
    sa.Column('repo_key', sa.String(length=1000), nullable=False),
    sa.Column('branch', sa.String(length=255), nullable=False),
    sa.Column('secret_ciphertext', sa.Text(), nullable=False),
    sa.Column('credential_kind', sa.String(length=20), nullable=False),
    sa.Column('credential_ciphertext', sa.Text(), nullable=False),
    sa.Column('previews', sa.Boolean(), nullable=False),
    sa.Column('preview_dns_credential', sa.String(length=63), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                            name=op.f('fk_repo_links_service_id_services'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                            name=op.f('fk_repo_links_user_id_users'), ondelete='CASCADE'),
    *_common('repo_links'),
    sa.UniqueConstraint('service_id', name=op.f('uq_repo_links_service_id'))
    )
    with op.batch_alter_table('repo_links', schema=None) as batch_op:
        for column in ('workspace_id', 'user_id', 'repo_key'):
            batch_op.create_index(batch_op.f(f'ix_repo_links_{column}'), [column], unique=False)

    op.create_table('hook_deliveries',
    sa.Column('link_id', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('delivery_id', sa.String(length=200), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('ref', sa.String(length=255), nullable=False),
    sa.Column('commit', sa.String(length=64), nullable=False),
    sa.Column('pull_request', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('deployment_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['link_id'], ['repo_links.id'],
                            name=op.f('fk_hook_deliveries_link_id_repo_links'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'],
                            name=op.f('fk_hook_deliveries_deployment_id_deployments'),
                            ondelete='SET NULL'),
    *_common('hook_deliveries'),
    sa.UniqueConstraint('link_id', 'delivery_id',
                        name=op.f('uq_hook_deliveries_link_id_delivery_id'))
    )
    with op.batch_alter_table('hook_deliveries', schema=None) as batch_op:
        for column in ('workspace_id', 'link_id', 'deployment_id'):
            batch_op.create_index(batch_op.f(f'ix_hook_deliveries_{column}'), [column],
                                  unique=False)

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preview_of', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('preview_number', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_services_preview_of'), ['preview_of'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_services_preview_of_services'), 'services',
                                    ['preview_of'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preview_limit', sa.Integer(), nullable=False,
                                      server_default=sa.text('3')))


def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('preview_limit')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_services_preview_of_services'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_services_preview_of'))
        batch_op.drop_column('preview_number')
        batch_op.drop_column('preview_of')
    op.drop_table('hook_deliveries')
    op.drop_table('repo_links')
