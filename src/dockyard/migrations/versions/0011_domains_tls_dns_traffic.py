"""domains: how each gets its certificate (ACME or Cloudflare origin), the live one, its DNS
at Cloudflare; which servers' copies take traffic; drained servers; ACME accounts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:08:33.609408
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('acme_accounts',
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('directory_url', sa.String(length=500), nullable=False),
    sa.Column('key_ciphertext', sa.Text(), nullable=False),
    sa.Column('account_url', sa.String(length=500), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_acme_accounts_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acme_accounts')),
    sa.UniqueConstraint('workspace_id', 'directory_url', name=op.f('uq_acme_accounts_workspace_id_directory_url'))
    )
    with op.batch_alter_table('acme_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acme_accounts_workspace_id'), ['workspace_id'], unique=False)

    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tls', sa.String(length=20), nullable=False,
                                      server_default=sa.text("'acme'")))
        batch_op.add_column(sa.Column('acme_directory', sa.String(length=500), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column('redirect_https', sa.Boolean(), nullable=False,
                                      server_default=sa.text("'1'")))
        batch_op.add_column(sa.Column('hsts', sa.Boolean(), nullable=False,
                                      server_default=sa.text("'0'")))
        batch_op.add_column(sa.Column('certificate_pem', sa.Text(), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column('key_ciphertext', sa.Text(), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column('certificate_error', sa.Text(), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column('certificate_renewed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dns_credential', sa.String(length=63), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column('dns_proxied', sa.Boolean(), nullable=False,
                                      server_default=sa.text("'0'")))
        batch_op.add_column(sa.Column('dns_status', sa.String(length=20), nullable=False,
                                      server_default=sa.text("'none'")))
        batch_op.add_column(sa.Column('dns_error', sa.Text(), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column('dns_addresses', sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))

    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drained_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('service_servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('traffic', sa.String(length=10), nullable=False,
                                      server_default=sa.text("'up'")))
        batch_op.add_column(sa.Column('traffic_reason', sa.Text(), nullable=False,
                                      server_default=sa.text("''")))
        batch_op.add_column(sa.Column('traffic_changed_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('service_servers', schema=None) as batch_op:
        batch_op.drop_column('traffic_changed_at')
        batch_op.drop_column('traffic_reason')
        batch_op.drop_column('traffic')

    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.drop_column('drained_at')

    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_column('dns_addresses')
        batch_op.drop_column('dns_error')
        batch_op.drop_column('dns_status')
        batch_op.drop_column('dns_proxied')
        batch_op.drop_column('dns_credential')
        batch_op.drop_column('certificate_renewed_at')
        batch_op.drop_column('certificate_error')
        batch_op.drop_column('key_ciphertext')
        batch_op.drop_column('certificate_pem')
        batch_op.drop_column('hsts')
        batch_op.drop_column('redirect_https')
        batch_op.drop_column('acme_directory')
        batch_op.drop_column('tls')

    with op.batch_alter_table('acme_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acme_accounts_workspace_id'))

    op.drop_table('acme_accounts')
