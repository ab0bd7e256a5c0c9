"""The agent's request metrics and host figures (issue 15): closed request buckets after a
cursor, and the latest host sample. Both are read from memory: nothing here waits on Docker
or nginx (but the very first host sample)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dockyard.agent.parts import Parts
from dockyard.agent.request_metrics import PAGE_BUCKETS
from dockyard.agent.web import Call, Param, Routes, query
from dockyard.models.app_metrics import HostStats, RequestMetricsPage

AFTER: Param[int] = query("after", Annotated[int, Field(ge=0)], 0)
routes: Routes[Parts] = Routes()


@routes.get("/metrics/requests", params=(AFTER,))
async def request_metrics(call: Call[Parts]) -> RequestMetricsPage:
    """Closed buckets numbered over `after`, oldest first, at most PAGE_BUCKETS of them."""
    return call.parts.request_metrics.page(call[AFTER], PAGE_BUCKETS)


@routes.get("/host")
async def host_stats(call: Call[Parts]) -> HostStats:
    return await call.parts.host_sampler.current()
