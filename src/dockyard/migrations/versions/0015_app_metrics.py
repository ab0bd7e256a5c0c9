"""app metrics (issue 15): request counts per service, server, release and minute (and hour),
totals per service and server (Prometheus counters), servers' host figures (latest and per
minute), and each server's request-bucket cursor

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 21:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ('requests', 'status_2xx', 'status_3xx', 'status_4xx', 'status_5xx', 'bytes_sent')


def _server_fk(table: str) -> Any:
    return sa.ForeignKeyConstraint(['server_id'], ['servers.id'],
                                   name=op.f(f'fk_{table}_server_id_servers'), ondelete='CASCADE')


def _counts_table(table: str, period: str) -> None:
    op.create_table(table,
    sa.Column('service_id', sa.String(length=32), nullable=False),
    sa.Column('server_id', sa.String(length=32), nullable=False),
    sa.Column(period, sa.Integer(), nullable=False),
    sa.Column('release', sa.String(length=8), nullable=False),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS],
    sa.Column('latency', sa.Text(), nullable=False),
    _server_fk(table),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                            name=op.f(f'fk_{table}_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('service_id', 'server_id', period, 'release', name=op.f(f'pk_{table}'))
    )
    op.create_index(f'ix_{table}_{period}', table, [period], unique=False)
    op.create_index(f'ix_{table}_service_id_{period}', table, ['service_id', period], unique=False)


def upgrade() -> None:
    _counts_table('app_metric_minutes', 'minute')
    _counts_table('app_metric_hours', 'hour')
    op.create_table('app_metric_totals',
    sa.Column('service_id', sa.String(length=32), nullable=False),
    sa.Column('server_id', sa.String(length=32), nullable=False),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS],
    sa.Column('latency', sa.Text(), nullable=False),
    _server_fk('app_metric_totals'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                            name=op.f('fk_app_metric_totals_service_id_services'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('service_id', 'server_id', name=op.f('pk_app_metric_totals'))
    )
    op.create_table('host_stats_latest',
    sa.Column('server_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('stats', sa.Text(), nullable=False),
    _server_fk('host_stats_latest'),
    sa.PrimaryKeyConstraint('server_id', name=op.f('pk_host_stats_latest'))
    )
    op.create_table('host_stats_minutes',
    sa.Column('server_id', sa.String(length=32), nullable=False),
    sa.Column('minute', sa.Integer(), nullable=False),
    sa.Column('stats', sa.Text(), nullable=False),
    _server_fk('host_stats_minutes'),
    sa.PrimaryKeyConstraint('server_id', 'minute', name=op.f('pk_host_stats_minutes'))
    )
    op.create_index('ix_host_stats_minutes_minute', 'host_stats_minutes', ['minute'], unique=False)
    op.create_table('request_metrics_cursors',
    sa.Column('server_id', sa.String(length=32), nullable=False),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('lost', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    _server_fk('request_metrics_cursors'),
    sa.PrimaryKeyConstraint('server_id', name=op.f('pk_request_metrics_cursors'))
    )


def downgrade() -> None:
    for table in ('request_metrics_cursors', 'host_stats_minutes', 'host_stats_latest',
                  'app_metric_totals', 'app_metric_hours', 'app_metric_minutes'):
        op.drop_table(table)
