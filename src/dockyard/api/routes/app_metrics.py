"""A service's request metrics (rate, status classes, latency percentiles, bytes, deploys)
and a server's health figures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import app_metrics_query
from dockyard.models import fields
from dockyard.models.app_metric_series import GroupBy, MetricsSince, ServerHealth, ServiceMetrics

router = api_router(tags=["app-metrics"], responses=COMMON_RESPONSES)
SinceQuery = Annotated[MetricsSince, Query(description="Like 30m, 6h or 7d (at most 30d).")]
ByQuery = Annotated[GroupBy | None, Query(description="One series per server or release.")]


@router.get("/projects/{project}/services/{service}/metrics", operation_id="service_metrics",
            summary="A service's requests over time, with its deploys")
async def service_metrics(project: ProjectName, service: ServiceName, platform: PlatformDep,
                          actor: ActorDep, since: SinceQuery = "1h", by: ByQuery = None
                          ) -> ServiceMetrics:
    return await app_metrics_query.service_metrics(platform, actor, project, service, since, by)


@router.get("/infra/servers/{name}/health", operation_id="server_health",
            summary="A server's latest CPU, memory, disk and container figures")
async def server_health(name: Annotated[fields.Name, Path(description="Server name.")],
                        platform: PlatformDep, actor: ActorDep) -> ServerHealth:
    return await app_metrics_query.server_health(platform, actor, name)
