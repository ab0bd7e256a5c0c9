"""autoscale (issue 15): a policy per app service (bounds, target, cool-down, who set it) and
the decisions the autoscaler recorded

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE"
        ) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{target}"))


def _policies() -> None:
    op.create_table(
        "autoscale_policies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("target_rps", sa.Float(), nullable=True),
        sa.Column("target_cpu", sa.Float(), nullable=True),
        sa.Column("cooldown_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_evaluated_at", WHEN, nullable=True),
        sa.Column("last_scaled_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        _fk("autoscale_policies", "workspace_id", "workspaces"),
        _fk("autoscale_policies", "service_id", "services"),
        _fk("autoscale_policies", "user_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autoscale_policies")),
        sa.UniqueConstraint("service_id", name=op.f("uq_autoscale_policies_service_id")),
    )
    for column in ("workspace_id", "user_id"):
        op.create_index(op.f(f"ix_autoscale_policies_{column}"), "autoscale_policies",
                        [column], unique=False)


def _decisions() -> None:
    op.create_table(
        "autoscale_decisions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("from_replicas", sa.Integer(), nullable=False),
        sa.Column("to_replicas", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("deployment_id", sa.String(length=32), nullable=True),
        _fk("autoscale_decisions", "workspace_id", "workspaces"),
        _fk("autoscale_decisions", "service_id", "services"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autoscale_decisions")),
    )
    for column in ("workspace_id", "service_id", "created_at"):
        op.create_index(op.f(f"ix_autoscale_decisions_{column}"), "autoscale_decisions",
                        [column], unique=False)


def upgrade() -> None:
    _policies()
    _decisions()


def downgrade() -> None:
    op.drop_table("autoscale_decisions")
    op.drop_table("autoscale_policies")
