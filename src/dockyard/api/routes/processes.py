"""A service's processes: list them, restart them, run a one-off command."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import StreamingResponse

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.deploys import SSE_RESPONSE, RunnerDep
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.api.sse import KEEPALIVE, event_stream
from dockyard.core import processes
from dockyard.core.processes import RunEvent
from dockyard.models.fields import ProcessType
from dockyard.models.processes import ProcessListing, RunRequest, ScaleRequest

router = api_router(prefix="/projects/{project}/services/{service}", tags=["processes"],
                   responses=WRITE_RESPONSES)
RUN_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "Server-Sent Events: `started`, `output` chunks, then `exit` (or `error`).",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


@router.get("/processes", operation_id="list_processes",
            summary="Every container of a service on every server it runs on")
async def list_processes(project: ProjectName, service: ServiceName, platform: PlatformDep,
                         actor: ActorDep) -> ProcessListing:
    return await processes.list_processes(platform, actor, project, service)


@router.post("/restart", operation_id="restart_service", response_class=StreamingResponse,
             responses=SSE_RESPONSE, summary="Rolling restart: a new rollout of the live release")
async def restart(project: ProjectName, service: ServiceName, platform: PlatformDep,
                  actor: ActorDep, runner: RunnerDep,
                  process_type: Annotated[ProcessType | None, Query(
                      alias="type", description="Restart only this process type.")] = None
                  ) -> StreamingResponse:
    deployment_id = await processes.start_restart(platform, runner, actor, project, service,
                                                  process_type)
    return event_stream(runner.events, deployment_id)


@router.post("/scale", operation_id="scale_service", response_class=StreamingResponse,
             responses=SSE_RESPONSE,
             summary="Set replicas per process type: a rolling rollout of the live release")
async def scale(project: ProjectName, service: ServiceName, body: ScaleRequest,
                platform: PlatformDep, actor: ActorDep, runner: RunnerDep) -> StreamingResponse:
    deployment_id = await processes.start_scale(platform, runner, actor, project, service, body)
    return event_stream(runner.events, deployment_id)


@router.post("/run", operation_id="run_command", response_class=StreamingResponse,
             responses=RUN_RESPONSE,
             summary="Run a one-off command in a new container of the live release")
async def run(project: ProjectName, service: ServiceName, body: RunRequest,
              platform: PlatformDep, actor: ActorDep) -> StreamingResponse:
    events = await processes.run_command(platform, actor, project, service, body)
    return StreamingResponse(_frames(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _frames(events: AsyncIterator[RunEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        if event.kind == "heartbeat":
            yield KEEPALIVE
            continue
        payload = json.dumps(event.data, separators=(",", ":"))
        yield f"event: {event.kind}\ndata: {payload}\n\n".encode()
