"""Server-Sent Events of a deployment's log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from dockyard.deploy.events import EventLog

KEEPALIVE = b": keep-alive\n\n"


async def _frames(log: EventLog, deployment_id: str, after: int) -> AsyncIterator[bytes]:
    async for event in log.follow(deployment_id, after):
        yield KEEPALIVE if event is None else event.sse()


def event_stream(log: EventLog, deployment_id: str, after: int = 0) -> StreamingResponse:
    headers = {"X-Deployment-ID": deployment_id, "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}
    return StreamingResponse(_frames(log, deployment_id, after), media_type="text/event-stream",
                             headers=headers)
