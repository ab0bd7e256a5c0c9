"""What the metrics endpoints answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dockyard.models.schemas import Output


class RequestMetricPublic(Output):
    request_id: str | None
    method: str
    path: str
    route: str
    query_params: dict[str, Any]
    status_code: int
    error_detail: str | None
    latency_ms: float
    client_ip: str
    user_agent: str
    referer: str
    user_id: str | None
    workspace_id: str | None
    country: str | None
    created_at: datetime


class EndpointStat(Output):
    method: str
    route: str
    requests: int
    average_latency_ms: float
    max_latency_ms: float


class RequestStats(Output):
    hours: int
    total: int
    average_latency_ms: float
    slow_endpoints: list[EndpointStat]  # endpoints with requests over the slow threshold
    error_endpoints: list[EndpointStat]  # endpoints that answered 4xx/5xx
