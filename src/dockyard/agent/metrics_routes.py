"""The agent's request metrics and host figures (issue 15): closed request buckets after a
cursor, and the latest host sample. Both are read from memory: nothing here waits on Docker
or nginx (but the very first host sample)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dockyard.agent.hoststats import HostSampler
from dockyard.agent.request_metrics import PAGE_BUCKETS, RequestCollector
from dockyard.models.app_metrics import HostStats, RequestMetricsPage

router = APIRouter(tags=["metrics"])


def _collector(request: Request) -> RequestCollector:
    collector: RequestCollector = request.app.state.request_metrics
    return collector


def _sampler(request: Request) -> HostSampler:
    sampler: HostSampler = request.app.state.host_sampler
    return sampler


@router.get("/metrics/requests")
async def request_metrics(collector: Annotated[RequestCollector, Depends(_collector)],
                          after: Annotated[int, Query(ge=0)] = 0) -> RequestMetricsPage:
    """Closed buckets numbered over `after`, oldest first, at most PAGE_BUCKETS of them."""
    return collector.page(after, PAGE_BUCKETS)


@router.get("/host")
async def host_stats(sampler: Annotated[HostSampler, Depends(_sampler)]) -> HostStats:
    return await sampler.current()
