"""accounts: login sessions, invitations, token lineage and role caps, email skeletons

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dockyard.models.emails import email_skeleton, normalize_email

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLE = sa.Enum("owner", "admin", "member", "viewer", name="role", native_enum=False, length=20)


def _timestamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _create_sessions() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        _fk("user_sessions", "user_id", "users", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])


def _create_invitations() -> None:
    op.create_table(
        "invitations",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", _ROLE, nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.String(length=32), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.String(length=32), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        _fk("invitations", "workspace_id", "workspaces", "CASCADE"),
        _fk("invitations", "invited_by", "users", "SET NULL"),
        _fk("invitations", "accepted_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    for column in ("workspace_id", "invited_by", "accepted_by"):
        op.create_index(op.f(f"ix_invitations_{column}"), "invitations", [column])


def _fill_email_skeletons() -> None:
    """Existing addresses in their one spelling, with their skeleton; look-alikes stop here."""
    users = sa.table("users", sa.column("id"), sa.column("email"), sa.column("email_skeleton"))
    connection = op.get_bind()
    seen: dict[str, str] = {}
    for user_id, email in connection.execute(sa.select(users.c.id, users.c.email)).all():
        skeleton = email_skeleton(email)
        if skeleton in seen:
            raise RuntimeError(f"accounts {seen[skeleton]} and {email} look alike; "
                               "delete or rename one of them, then migrate again")
        seen[skeleton] = email
        connection.execute(users.update().where(users.c.id == user_id).values(
            email=normalize_email(email), email_skeleton=skeleton))


def upgrade() -> None:
    _create_sessions()
    _create_invitations()
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_skeleton", sa.String(length=320), nullable=True))
    _fill_email_skeletons()
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("email_skeleton", existing_type=sa.String(320), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_users_email_skeleton"), ["email_skeleton"])
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_token_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("session_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("role", _ROLE, nullable=True))
        batch_op.create_foreign_key(op.f("fk_api_tokens_parent_token_id_api_tokens"),
                                    "api_tokens", ["parent_token_id"], ["id"], ondelete="CASCADE")
        batch_op.create_foreign_key(op.f("fk_api_tokens_session_id_user_sessions"),
                                    "user_sessions", ["session_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index(batch_op.f("ix_api_tokens_parent_token_id"), ["parent_token_id"])
        batch_op.create_index(batch_op.f("ix_api_tokens_session_id"), ["session_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_session_id"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_parent_token_id"))
        batch_op.drop_constraint(op.f("fk_api_tokens_session_id_user_sessions"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_api_tokens_parent_token_id_api_tokens"),
                                 type_="foreignkey")
        batch_op.drop_column("role")
        batch_op.drop_column("session_id")
        batch_op.drop_column("parent_token_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_users_email_skeleton"), type_="unique")
        batch_op.drop_column("email_skeleton")
    op.drop_table("invitations")
    op.drop_table("user_sessions")
