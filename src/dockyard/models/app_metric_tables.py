"""Tables of the app request metrics and server health (issue 15).

Sizes: a service served by one release from one server has at most 1,440 minute rows a day
(kept 24 h) and 24 hour rows a day (kept 30 days: 720); a deploy adds a second release for the
minutes or hours it overlaps. A row takes ~350 bytes with its indices (measured on SQLite;
the histogram is JSON text). A server has one latest host row and at most 1,440 history rows
(one a minute, kept 24 h); a service has one row of totals per server (what Prometheus
reads)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dockyard.models.base import Base, utcnow


def _key(target: str) -> Mapped[str]:
    return mapped_column(String(32), ForeignKey(target, ondelete="CASCADE"), primary_key=True)


class _Counts:
    """A RequestBucket's counts; `latency` is its histogram as a JSON list."""

    release: Mapped[str] = mapped_column(String(8), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    status_2xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_3xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_4xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_5xx: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    latency: Mapped[str] = mapped_column(Text, default="[]")


class AppMetricMinute(_Counts, Base):
    """One service's requests served by one release on one server in one minute."""

    __tablename__ = "app_metric_minutes"
    __audited__ = False
    __table_args__ = (Index("ix_app_metric_minutes_service_id_minute", "service_id", "minute"),
                      Index("ix_app_metric_minutes_minute", "minute"))
    service_id: Mapped[str] = _key("services.id")
    server_id: Mapped[str] = _key("servers.id")
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch s, a multiple of 60


class AppMetricHour(_Counts, Base):
    """The minute rows of one hour added up (the hour's epoch seconds, a multiple of 3600)."""

    __tablename__ = "app_metric_hours"
    __audited__ = False
    __table_args__ = (Index("ix_app_metric_hours_service_id_hour", "service_id", "hour"),
                      Index("ix_app_metric_hours_hour", "hour"))
    service_id: Mapped[str] = _key("services.id")
    server_id: Mapped[str] = _key("servers.id")
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)


class AppMetricTotal(Base):
    """Everything a service's requests on one server added up since it was first seen (never
    pruned: Prometheus reads these as counters)."""

    __tablename__ = "app_metric_totals"
    __audited__ = False
    service_id: Mapped[str] = _key("services.id")
    server_id: Mapped[str] = _key("servers.id")
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    status_2xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_3xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_4xx: Mapped[int] = mapped_column(BigInteger, default=0)
    status_5xx: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    latency: Mapped[str] = mapped_column(Text, default="[]")


class HostStatsLatest(Base):
    """The latest HostStats (as JSON) an agent reported for its server."""

    __tablename__ = "host_stats_latest"
    __audited__ = False
    server_id: Mapped[str] = _key("servers.id")
    at: Mapped[float] = mapped_column(Float)
    stats: Mapped[str] = mapped_column(Text)


class HostStatsMinute(Base):
    """A server's HostStats (as JSON), the last of each minute."""

    __tablename__ = "host_stats_minutes"
    __audited__ = False
    __table_args__ = (Index("ix_host_stats_minutes_minute", "minute"),)
    server_id: Mapped[str] = _key("servers.id")
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)
    stats: Mapped[str] = mapped_column(Text)


class RequestMetricsCursor(Base):
    """How far the control plane has read a server's request buckets (the agent's cursor)."""

    __tablename__ = "request_metrics_cursors"
    __audited__ = False
    server_id: Mapped[str] = _key("servers.id")
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    lost: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
