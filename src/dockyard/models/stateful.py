"""Stateful services (Postgres, Redis) as tables: where each runs, how to reach it, and its
backups; and the link an app's release records to one of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dockyard.models.base import Base, IdMixin, TimestampMixin
from dockyard.models.enums import ServiceKind
from dockyard.models.tables import _enum, _fk

DEFAULT_BACKUP_SCHEDULE = "0 3 * * *"  # cron: daily at 03:00 UTC
DEFAULT_BACKUP_RETENTION = 7


class StatefulInstance(TimestampMixin, Base):
    """The one container of a stateful service: its server, published port, image, and
    credentials (the password encrypted). The service row keeps name, kind and project."""

    __tablename__ = "stateful_instances"
    __table_args__ = (UniqueConstraint("server_id", "port"),)
    __audit_hidden__ = frozenset({"password_ciphertext"})
    service_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    server_id: Mapped[str] = _fk("servers.id")
    port: Mapped[int] = mapped_column(Integer)
    image: Mapped[str] = mapped_column(String(512))
    version: Mapped[str] = mapped_column(String(20), default="")
    memory_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    username: Mapped[str] = mapped_column(String(63), default="")
    database: Mapped[str] = mapped_column(String(63), default="")
    password_ciphertext: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="running")  # StatefulPublic.state
    backup_schedule: Mapped[str] = mapped_column(String(100), default=DEFAULT_BACKUP_SCHEDULE)
    backup_retention: Mapped[int] = mapped_column(Integer, default=DEFAULT_BACKUP_RETENTION)
    last_scheduled_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def id(self) -> str:
        """Audit rows name it by its service."""
        return self.service_id


class Backup(IdMixin, TimestampMixin, Base):
    """One backup of a stateful service. It outlives its service (a deleted service's final
    backup), so it keeps the service's name, kind and project itself."""

    __tablename__ = "backups"
    workspace_id: Mapped[str] = _fk("workspaces.id")
    project_id: Mapped[str] = _fk("projects.id")
    service_id: Mapped[str | None] = _fk("services.id", nullable=True, cascade=False)
    service_name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[ServiceKind] = mapped_column(_enum(ServiceKind))
    version: Mapped[str] = mapped_column(String(20), default="")
    # manual | schedule | final (before delete) | safety (before an overwriting restore)
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|good|failed
    storage: Mapped[str] = mapped_column(String(20), default="local")  # local | s3
    location: Mapped[str] = mapped_column(String(1024), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)  # a running one's lease
    verification: Mapped[str] = mapped_column(Text, default="")  # what the check found
    error: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class StatefulLink:
    """What an app's release knows of one stateful service of its project: the variable it
    is injected as, its URL (with the password), and where it runs."""

    service: str
    kind: ServiceKind
    variable: str
    url: str
    hostname: str
    server_id: str
    server_ip: str
