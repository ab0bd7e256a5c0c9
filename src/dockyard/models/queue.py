"""Tables of the app kernel: the transactional outbox (also the queue without Redis) and the
request metrics. Logs rather than domain records, so they leave no audit rows."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dockyard.models.base import Base, utcnow

BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for the relay, or for a worker when there is no Redis
    DELIVERED = "delivered"  # handed to Redis by the relay
    DONE = "done"  # processed by a worker reading the outbox directly
    DEAD = "dead"  # used up its attempts (outbox used as the queue)


class OutboxEvent(Base):
    __tablename__ = "queue_outbox"
    __audited__ = False
    __table_args__ = (
        UniqueConstraint("broker", "queue", "idempotency_key"),
        Index("ix_queue_outbox_broker_status_id", "broker", "status", "id"),
        Index("ix_queue_outbox_broker_key_status", "broker", "ordering_key", "status"),
    )
    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    broker: Mapped[str] = mapped_column(String(63))
    queue: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(200))
    ordering_key: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.PENDING.value)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")


class RequestMetric(Base):
    """One HTTP request as the metrics middleware saw it."""

    __tablename__ = "request_metrics"
    __audited__ = False
    __table_args__ = (Index("ix_request_metrics_workspace_created", "workspace_id", "created_at"),)
    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(128), index=True, default=None)
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(2048))
    route: Mapped[str] = mapped_column(String(512), default="")  # the template, for grouping
    query_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status_code: Mapped[int] = mapped_column(Integer)
    error_detail: Mapped[str | None] = mapped_column(Text, default=None)
    latency_ms: Mapped[float] = mapped_column(Float)
    client_ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    referer: Mapped[str] = mapped_column(String(2048), default="")
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    workspace_id: Mapped[str | None] = mapped_column(String(32), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    day: Mapped[int] = mapped_column(Integer)
    hour: Mapped[int] = mapped_column(Integer)
