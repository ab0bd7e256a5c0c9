"""What domains need beyond their own row: the ACME account of a workspace at a directory."""

from __future__ import annotations

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dockyard.models.base import Base, IdMixin, TimestampMixin
from dockyard.models.tables import _fk


class AcmeAccount(IdMixin, TimestampMixin, Base):
    """A workspace's account at one ACME directory: its key (encrypted) and account URL."""

    __tablename__ = "acme_accounts"
    __table_args__ = (UniqueConstraint("workspace_id", "directory_url"),)
    __audit_hidden__ = frozenset({"key_ciphertext"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    directory_url: Mapped[str] = mapped_column(String(500))
    key_ciphertext: Mapped[str] = mapped_column(Text)
    account_url: Mapped[str] = mapped_column(String(500), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
