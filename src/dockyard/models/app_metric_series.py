"""What a reader of a service's request metrics asks for and gets back (the API's records)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from dockyard.models.fields import Whole

UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# 1 to 43200 minutes, 1 to 720 hours or 1 to 30 days: what the pattern itself says, so that the
# OpenAPI schema admits exactly the values the API takes
METRICS_SINCE = (r"(?:[1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-2][0-9]{3}|43[01][0-9]{2}|43200)m"
                 r"|(?:[1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)h"
                 r"|(?:[1-9]|[12][0-9]|30)d")
MetricsSince = Annotated[str, Whole(METRICS_SINCE, "use 1m to 30d, a number and m, h or d "
                                                   "(like 30m, 6h or 7d): metrics are kept "
                                                   "30 days")]


def since_delta(since: str) -> timedelta:
    """'10m' → ten minutes (the value is checked by MetricsSince)."""
    return timedelta(**{UNITS[since[-1]]: int(since[:-1])})


class GroupBy(StrEnum):
    SERVER = "server"
    RELEASE = "release"


class MetricPoint(BaseModel):
    """The requests of one step starting at `time` (of one server or release with `by`)."""

    time: datetime
    group: str = Field(default="", description="The server or release, with `by`")
    requests: int
    rate: float = Field(description="Requests per second")
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    bytes_sent: int
    live_release: str = Field(description="The release live when the step began ('' before "
                                          "the first)")


class DeployMarker(BaseModel):
    time: datetime
    release: str
    kind: Literal["deploy", "rollback"]


class ServiceMetrics(BaseModel):
    project: str
    service: str
    since: str
    step_seconds: int
    by: GroupBy | None
    points: list[MetricPoint]
    deploys: list[DeployMarker]


class ServerHealth(BaseModel):
    """A server's latest host figures and how old they are (none: never reported)."""

    server: str
    age_seconds: float | None
    cpus: int | None = None
    cpu_percent: float | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    disk_total_bytes: int | None = None
    disk_used_bytes: int | None = None
    disk_used_fraction: float | None = None
    containers_running: int | None = None
    containers_stopped: int | None = None
