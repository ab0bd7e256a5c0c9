from typing import Annotated

from fastapi import Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES
from dockyard.api.routing import api_router
from dockyard.kernel.metrics import store
from dockyard.kernel.metrics.schemas import RequestMetricPublic, RequestStats

router = api_router("/metrics/requests", under="", tags=["metrics"], responses=COMMON_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many requests.")]
Hours = Annotated[int, Query(ge=1, le=24 * 90, description="Look back this many hours.")]
PathPrefix = Annotated[str | None, Query(max_length=2048, description="Paths starting so.")]
MinLatency = Annotated[float | None, Query(ge=0, description="Only requests this slow (ms).")]


@router.get("", operation_id="recent_requests", summary="Recent requests in this workspace")
async def recent(
    platform: PlatformDep, actor: ActorDep, limit: Limit = 100,
    path_prefix: PathPrefix = None, min_latency_ms: MinLatency = None,
) -> list[RequestMetricPublic]:
    return await store.recent_requests(platform, actor, limit, path_prefix, min_latency_ms)


@router.get("/stats", operation_id="request_stats",
            summary="Totals, latency, slow and failing endpoints")
async def stats(platform: PlatformDep, actor: ActorDep, hours: Hours = 24) -> RequestStats:
    return await store.request_stats(platform, actor, hours)


@router.get("/slow", operation_id="slow_requests", summary="Requests that took over one second")
async def slow(
    platform: PlatformDep, actor: ActorDep, hours: Hours = 24, limit: Limit = 100
) -> list[RequestMetricPublic]:
    return await store.slow_requests(platform, actor, hours, limit)


@router.get("/errors", operation_id="failed_requests", summary="Requests answered with 4xx or 5xx")
async def errors(
    platform: PlatformDep, actor: ActorDep, hours: Hours = 24, limit: Limit = 100
) -> list[RequestMetricPublic]:
    return await store.error_requests(platform, actor, hours, limit)
