"""Auto-scaling: one policy per app service (its `web` process type), and the decisions the
autoscaler recorded (only those that changed something or were blocked)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dockyard.models.base import Base, IdMixin, TimestampMixin, utcnow


def _fk(target: str, *, nullable: bool = False) -> Mapped[str]:
    return mapped_column(String(32), ForeignKey(target, ondelete="CASCADE"),
                         nullable=nullable, index=True)


class AutoscalePolicy(IdMixin, TimestampMixin, Base):
    """Bounds and target of a service's `web` replicas (per server, as `scale` counts them).
    The autoscaler acts as `user_id`, the member who set the policy."""

    __tablename__ = "autoscale_policies"
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("services.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    min_replicas: Mapped[int] = mapped_column(Integer)
    max_replicas: Mapped[int] = mapped_column(Integer)
    target_rps: Mapped[float | None] = mapped_column(Float, default=None)
    target_cpu: Mapped[float | None] = mapped_column(Float, default=None)
    cooldown_seconds: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(default=True)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(default=None)
    last_scaled_at: Mapped[datetime | None] = mapped_column(default=None)


class AutoscaleDecision(Base):
    """A decision that changed the replicas or was blocked: `outcome` names the scale
    deployment it started, or says why nothing was started."""

    __tablename__ = "autoscale_decisions"
    __audited__ = False
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = _fk("services.id")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    from_replicas: Mapped[int] = mapped_column(Integer)
    to_replicas: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    deployment_id: Mapped[str | None] = mapped_column(String(32), default=None)
