"""Servers from DigitalOcean: provision, snapshots, sizes and regions (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.responses import StreamingResponse

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import ObjectId
from dockyard.api.routing import api_router
from dockyard.core import droplets, provision, snapshots
from dockyard.models import fields
from dockyard.models.provision import (
    DropletPublic,
    ProvisionEvent,
    ProvisionRequest,
    RegionPublic,
    SizePublic,
    SnapshotCreate,
    SnapshotPublic,
)
from dockyard.models.schemas import ErrorBody

STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Progress as Server-Sent Events (ProvisionEvent JSON), until `done`.",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    502: {"model": ErrorBody, "description": "DigitalOcean refused or did not answer."}}
Credential = Annotated[fields.Name, Query(description="The DigitalOcean credential's name.")]
DropletId = Annotated[int, Path(ge=1, le=10**18, description="DigitalOcean's droplet id.")]
SnapshotRef = Annotated[str, fields.Whole(
    r"[0-9]{1,18}|[0-9a-f]{32}", "use the snapshot's id or DigitalOcean's id of it"),
    Path(description="The snapshot's id, or DigitalOcean's id of it.")]
BuildToken = Annotated[str, fields.Whole(r"[A-Za-z0-9_-]{20,100}", "not a build token"),
                       Path(description="The build's one-time token.")]
router = api_router(prefix="/infra", tags=["infra"],
                   responses={**WRITE_RESPONSES, 502: STREAMED[502]})


async def _frames(events: AsyncIterator[ProvisionEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        yield event.sse()


def _stream(events: AsyncIterator[ProvisionEvent]) -> StreamingResponse:
    return StreamingResponse(_frames(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/servers/provision", operation_id="provision_servers",
             response_class=StreamingResponse, responses=STREAMED,
             summary="Create servers on DigitalOcean (admins), streamed")
async def provision_servers(body: ProvisionRequest, platform: PlatformDep, actor: ActorDep
                            ) -> StreamingResponse:
    return _stream(await provision.provision(platform, actor, body))


@router.get("/sizes", operation_id="list_sizes", summary="Droplet sizes with their prices")
async def list_sizes(platform: PlatformDep, actor: ActorDep,
                     credential: Credential = "digitalocean") -> list[SizePublic]:
    return await droplets.sizes(platform, actor, credential)


@router.get("/regions", operation_id="list_regions", summary="DigitalOcean's regions")
async def list_regions(platform: PlatformDep, actor: ActorDep,
                       credential: Credential = "digitalocean") -> list[RegionPublic]:
    return await droplets.regions(platform, actor, credential)


@router.get("/droplets", operation_id="list_droplets",
            summary="The account's managed droplets, each with its server if any (admins)")
async def list_droplets(platform: PlatformDep, actor: ActorDep,
                        credential: Credential = "digitalocean") -> list[DropletPublic]:
    return await droplets.list_droplets(platform, actor, credential)


@router.delete("/droplets/{droplet_id}", status_code=204, operation_id="destroy_droplet",
               summary="Destroy a droplet that is no server; an unmanaged one only forced")
async def destroy_droplet(droplet_id: DropletId, platform: PlatformDep, actor: ActorDep,
                          credential: Credential = "digitalocean", force: bool = False) -> None:
    await droplets.destroy_droplet(platform, actor, droplet_id, credential, force)


@router.delete("/servers/{server_id}/droplet", status_code=204, operation_id="destroy_server",
               summary="Drain a provisioned server, destroy its droplet, forget it (admins)")
async def destroy_server(server_id: ObjectId, platform: PlatformDep, actor: ActorDep,
                         credential: Credential = "digitalocean") -> None:
    await droplets.destroy_server(platform, actor, server_id, credential)


@router.post("/snapshots", operation_id="create_snapshot", response_class=StreamingResponse,
             responses=STREAMED, summary="Build a Dockyard snapshot (admins), streamed")
async def create_snapshot(body: SnapshotCreate, platform: PlatformDep, actor: ActorDep
                          ) -> StreamingResponse:
    return _stream(await snapshots.create_snapshot(platform, actor, body))


@router.get("/snapshots", operation_id="list_snapshots",
            summary="This workspace's Dockyard snapshots and the agent version each carries")
async def list_snapshots(platform: PlatformDep, actor: ActorDep) -> list[SnapshotPublic]:
    return await snapshots.list_snapshots(platform, actor)


@router.delete("/snapshots/{snapshot_id}", status_code=204, operation_id="delete_snapshot",
               summary="Delete a Dockyard snapshot (admins)")
async def delete_snapshot(snapshot_id: SnapshotRef, platform: PlatformDep, actor: ActorDep,
                          credential: Credential = "digitalocean") -> None:
    await snapshots.delete_snapshot(platform, actor, snapshot_id, credential)


@router.post("/snapshots/builds/{token}/done", status_code=204, operation_id="snapshot_built",
             summary="A snapshot build droplet reports done (its one-time token)")
async def snapshot_built(token: BuildToken, platform: PlatformDep) -> None:
    await snapshots.build_done(platform, token)
