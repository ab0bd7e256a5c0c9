"""alerts: notification channels, alerts, their deliveries and per-service traffic rules

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 21:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
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


def _fk(table: str, column: str, target: str, nullable: bool = False) -> list[Any]:
    return [sa.Column(column, sa.String(length=32), nullable=nullable),
            sa.ForeignKeyConstraint([column], [f'{target}.id'],
                                    name=op.f(f'fk_{table}_{column}_{target}'),
                                    ondelete='CASCADE')]


def _indexes(table: str, *columns: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f'ix_{table}_{column}'), [column], unique=False)


def upgrade() -> None:
    op.create_table('notification_channels',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('target', sa.String(length=2048), nullable=False),
    sa.Column('target_ciphertext', sa.Text(), nullable=False),
    sa.Column('secret_ciphertext', sa.Text(), nullable=False),
    *_common('notification_channels'))
    _indexes('notification_channels', 'workspace_id')

    op.create_table('alerts',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('once', sa.Boolean(), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('repeats', sa.Integer(), nullable=False),
    *_common('alerts'))
    _indexes('alerts', 'workspace_id', 'key')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_firing_key', ['workspace_id', 'key'], unique=True,
                              sqlite_where=sa.text("state = 'firing'"),
                              postgresql_where=sa.text("state = 'firing'"))
        batch_op.create_index('ix_alerts_once_key', ['workspace_id', 'key'], unique=True,
                              sqlite_where=sa.text('once'), postgresql_where=sa.text('once'))

    op.create_table('alert_deliveries',
    *_fk('alert_deliveries', 'channel_id', 'notification_channels'),
    *_fk('alert_deliveries', 'alert_id', 'alerts', nullable=True),
    sa.Column('event', sa.String(length=20), nullable=False),
    sa.Column('message', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('response_code', sa.Integer(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    *_common('alert_deliveries'))
    _indexes('alert_deliveries', 'workspace_id', 'channel_id', 'alert_id')

    op.create_table('alert_rules',
    *_fk('alert_rules', 'service_id', 'services'),
    sa.Column('max_5xx_rate', sa.Float(), nullable=True),
    sa.Column('max_p95_ms', sa.Integer(), nullable=True),
    sa.Column('window_seconds', sa.Integer(), nullable=False),
    *_common('alert_rules'),
    sa.UniqueConstraint('service_id', name=op.f('uq_alert_rules_service_id')))
    _indexes('alert_rules', 'workspace_id', 'service_id')


def downgrade() -> None:
    for table in ('alert_rules', 'alert_deliveries', 'alerts', 'notification_channels'):
        op.drop_table(table)
