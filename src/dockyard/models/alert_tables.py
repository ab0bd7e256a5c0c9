"""Tables of the alerts: a workspace's notification channels, its alerts (one row per episode
of a condition, or per one-shot event), each alert event's delivery to each channel, and the
per-service traffic thresholds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from dockyard.models.base import Base, IdMixin, TimestampMixin


def _fk(target: str, *, nullable: bool = False) -> Any:
    return mapped_column(String(32), ForeignKey(target, ondelete="CASCADE"), nullable=nullable,
                         index=True)


class NotificationChannel(IdMixin, TimestampMixin, Base):
    """Where a workspace's alerts go: a signed webhook, Slack, Discord or an email address."""

    __tablename__ = "notification_channels"
    __audit_hidden__ = frozenset({"secret_ciphertext", "target_ciphertext"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    kind: Mapped[str] = mapped_column(String(20))  # webhook | slack | discord | email
    # A URL's path and query can be a credential (Slack's and Discord's are): the target is
    # kept encrypted, and shown as `target` with them masked.
    target: Mapped[str] = mapped_column(String(2048))
    target_ciphertext: Mapped[str] = mapped_column(Text, default="")
    secret_ciphertext: Mapped[str] = mapped_column(Text, default="")  # webhook only


class Alert(IdMixin, TimestampMixin, Base):
    """One episode of a condition (`key`, like 'service-down:<id>') from its firing to its
    end, or a one-shot event (`once`: recorded resolved at once). At most one firing row per
    key, and one row per one-shot key (partial unique indexes), so two evaluators cannot
    fire the same alert twice."""

    __tablename__ = "alerts"
    __audited__ = False
    __table_args__ = (
        Index("ix_alerts_firing_key", "workspace_id", "key", unique=True,
              sqlite_where=text("state = 'firing'"), postgresql_where=text("state = 'firing'")),
        Index("ix_alerts_once_key", "workspace_id", "key", unique=True,
              sqlite_where=text("once"), postgresql_where=text("once")),
    )
    workspace_id: Mapped[str] = _fk("workspaces.id")
    key: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))  # critical | warning | info
    subject: Mapped[str] = mapped_column(String(500))
    detail: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), default="firing")  # firing | resolved
    once: Mapped[bool] = mapped_column(default=False)
    first_at: Mapped[datetime] = mapped_column()
    last_sent_at: Mapped[datetime] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    repeats: Mapped[int] = mapped_column(Integer, default=0)


class AlertDelivery(IdMixin, TimestampMixin, Base):
    """One alert event (fired, repeat, resolved, test) sent to one channel; `message` is what
    is sent, fixed when the event happened."""

    __tablename__ = "alert_deliveries"
    __audited__ = False
    workspace_id: Mapped[str] = _fk("workspaces.id")
    channel_id: Mapped[str] = _fk("notification_channels.id")
    alert_id: Mapped[str | None] = _fk("alerts.id", nullable=True)
    event: Mapped[str] = mapped_column(String(20))  # fired | repeat | resolved | test
    message: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    response_code: Mapped[int | None] = mapped_column(Integer, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class AlertRule(IdMixin, TimestampMixin, Base):
    """A service's traffic thresholds (each off when None), over the last `window_seconds`."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("service_id"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = _fk("services.id")
    max_5xx_rate: Mapped[float | None] = mapped_column(Float, default=None)
    max_p95_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    window_seconds: Mapped[int] = mapped_column(Integer, default=300)
