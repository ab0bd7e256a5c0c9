"""Agents that upgrade in place, and the agent bundle they upgrade to (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Path, Response
from fastapi.responses import StreamingResponse

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES, WRITE_RESPONSES
from dockyard.api.routing import api_router
from dockyard.core import upgrade
from dockyard.models.upgrades import BundleInfo, Sha256, UpgradeEvent, UpgradeRequest

SSE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string"}, "data": {"type": "string", "description": "UpgradeEvent JSON"}}}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Progress as Server-Sent Events (UpgradeEvent JSON), until `done`.",
          "content": {"text/event-stream": {"schema": SSE_EVENT}}}}
GZIP: dict[int | str, dict[str, Any]] = {
    200: {"description": "The bundle (tar.gz).", "content": {"application/gzip": {}}},
    404: {"description": "Not the bundle this control plane serves now."}}
BundleSha = Annotated[Sha256, Path(description="The bundle's SHA-256 (64 lowercase hex).")]
router = api_router(tags=["infra"])


async def _frames(events: AsyncIterator[UpgradeEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        yield event.sse()


@router.get("/agent/bundle", operation_id="get_agent_bundle_info", responses=COMMON_RESPONSES,
            summary="The agent bundle this control plane's servers upgrade to")
async def bundle_info(actor: ActorDep) -> BundleInfo:
    return upgrade.bundle_info(actor)


@router.get("/agent/bundle/{sha256}", operation_id="download_agent_bundle",
            response_class=Response, responses=GZIP,
            summary="The agent bundle (public: open source code, no secrets)")
async def download_bundle(sha256: BundleSha) -> Response:
    return Response(upgrade.bundle_bytes(sha256), media_type="application/gzip")


@router.post("/infra/servers/upgrade", operation_id="upgrade_servers",
             response_class=StreamingResponse, responses={**WRITE_RESPONSES, **STREAMED},
             summary="Upgrade servers' agents in place, one at a time (admins), streamed")
async def upgrade_servers(body: UpgradeRequest, platform: PlatformDep, actor: ActorDep
                          ) -> StreamingResponse:
    events = await upgrade.upgrade_servers(platform, actor, body)
    return StreamingResponse(_frames(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
