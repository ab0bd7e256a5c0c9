"""A service's logs: the newest lines, or a follow over Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Query
from fastapi.responses import StreamingResponse

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.api.sse import KEEPALIVE
from dockyard.core import logs
from dockyard.models.fields import IdPrefix, SingleLine
from dockyard.models.logs import MAX_TAIL, LogFilter, LogLinePublic, ProcessType, Since

router = api_router(prefix="/projects/{project}/services/{service}/logs", tags=["logs"],
                   responses=COMMON_RESPONSES)
FOLLOW_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "The newest lines, then each new one, as `line` events whose id resumes "
                   "the stream (send it back as Last-Event-ID).",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


def log_filter(
    process_type: Annotated[ProcessType | None, Query(alias="type")] = None,
    release: Annotated[IdPrefix | None, Query(description="Deployment id or prefix.")] = None,
    since: Annotated[Since | None, Query(description="Like 30s, 10m, 2h or 7d.")] = None,
    tail: Annotated[int, Query(ge=1, le=MAX_TAIL)] = 100,
    search: Annotated[SingleLine | None, Query(
        description="Only lines that contain this text (in any case).")] = None,
) -> LogFilter:
    return LogFilter(process_type=process_type, release=release, since=since, tail=tail,
                     search=search)


FilterDep = Annotated[LogFilter, Depends(log_filter)]


@router.get("", operation_id="service_logs", summary="The newest lines of a service's logs")
async def service_logs(project: ProjectName, service: ServiceName, wanted: FilterDep,
                       platform: PlatformDep, actor: ActorDep) -> list[LogLinePublic]:
    return await logs.read_logs(platform, actor, project, service, wanted)


@router.get("/follow", operation_id="follow_logs", summary="Follow a service's logs (SSE)",
            response_class=StreamingResponse, responses=FOLLOW_RESPONSE)
async def follow_logs(project: ProjectName, service: ServiceName, wanted: FilterDep,
                      platform: PlatformDep, actor: ActorDep,
                      last_event_id: Annotated[int, Header(ge=0, le=2**62)] = 0
                      ) -> StreamingResponse:
    batches = logs.follow(platform, actor, project, service, wanted, last_event_id)
    first = await anext(batches)  # a missing service or permission fails before streaming
    return StreamingResponse(_frames(first, batches), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _frames(first: list[LogLinePublic], rest: AsyncIterator[list[LogLinePublic]]
                  ) -> AsyncIterator[bytes]:
    batch, newest = first, 0
    while True:
        if not batch:
            yield KEEPALIVE
        for line in batch:
            newest = max(newest, line.id)
            yield f"id: {newest}\nevent: line\ndata: {line.model_dump_json()}\n\n".encode()
        batch = await anext(rest)
