"""stateful services: the instance of each Postgres or Redis service (server, port, image,
encrypted password, backup schedule) and its backups

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = sa.Enum("app", "redis", "postgres", name="servicekind", native_enum=False, length=20)


def _fk(column: str, table: str, target: str, ondelete: str = "CASCADE"
        ) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{target}"))


def _index(table: str, column: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def upgrade() -> None:
    _instances()
    _backups()


def _instances() -> None:
    op.create_table(
        "stateful_instances",
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("server_id", sa.String(length=32), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=63), nullable=False),
        sa.Column("database", sa.String(length=63), nullable=False),
        sa.Column("password_ciphertext", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("backup_schedule", sa.String(length=100), nullable=False),
        sa.Column("backup_retention", sa.Integer(), nullable=False),
        sa.Column("last_scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk("service_id", "stateful_instances", "services"),
        _fk("workspace_id", "stateful_instances", "workspaces"),
        _fk("server_id", "stateful_instances", "servers"),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_stateful_instances")),
        sa.UniqueConstraint("server_id", "port",
                            name=op.f("uq_stateful_instances_server_id_port")),
    )
    _index("stateful_instances", "workspace_id")
    _index("stateful_instances", "server_id")


def _backups() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=True),
        sa.Column("service_name", sa.String(length=63), nullable=False),
        sa.Column("kind", KINDS, nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("storage", sa.String(length=20), nullable=False),
        sa.Column("location", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verification", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk("workspace_id", "backups", "workspaces"),
        _fk("project_id", "backups", "projects"),
        _fk("service_id", "backups", "services", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    for column in ("workspace_id", "project_id", "service_id"):
        _index("backups", column)


def downgrade() -> None:
    op.drop_table("backups")
    op.drop_table("stateful_instances")
