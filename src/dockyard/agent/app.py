"""The agent's HTTP API. Each route parses, calls one `Node` method, and answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from tempfile import SpooledTemporaryFile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from dockyard.agent import (
    auth,
    buildconfig,
    cache_prune,
    cert_routes,
    disk_guard,
    exec_routes,
    firewall_routes,
    metrics_routes,
    processes,
    upgrade_routes,
)
from dockyard.agent.auth import KeyStore, NonceCache
from dockyard.agent.disk_guard import DiskGuard, GuardRules
from dockyard.agent.gate import BodyLimits, SignatureGate
from dockyard.agent.hoststats import HostSampler
from dockyard.agent.logbuffer import LogPage
from dockyard.agent.logrotate import node_rotator
from dockyard.agent.models import (
    AgentInfo,
    ContainerHealth,
    ContainerName,
    ContainerSpec,
    ContainerSummary,
    ContextPath,
    ImageRef,
    ImageSummary,
    KeyRotation,
    NodeHealth,
    OneOffRun,
    ProbeRequest,
    ProbeResult,
    ProcessState,
    PruneRequest,
    PruneResult,
    Repository,
    ServiceName,
    Site,
    StopRequest,
    Tag,
    TagRequest,
    VolumeRequest,
)
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.node import Node
from dockyard.agent.proxy import Nginx
from dockyard.agent.release import UPGRADE_PATH, code_version
from dockyard.agent.request_metrics import RequestCollector, in_background
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.settings import AgentSettings
from dockyard.agent.state import StateFile
from dockyard.agent.supervise import Supervisor
from dockyard.agent.upgrade import Restart, Upgrader
from dockyard.api.errors import install_error_handlers
from dockyard.api.middleware import RequestIdMiddleware
from dockyard.kernel.errors import DockyardError, InvalidInput
from dockyard.models.app_metrics import FileSystemUsage
from dockyard.models.fields import BuildArg

NDJSON = "application/x-ndjson"
UPLOAD_PATHS = ("/images/build", "/images/import", exec_routes.BLOBS_PATH)
_END = object()
ContainerPath = Annotated[ContainerName, Path()]
ServicePath = Annotated[ServiceName, Path()]
Dockerfile = Annotated[ContextPath, Query()]


def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(get_node)]
router = APIRouter()


async def _ndjson(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    try:
        if first is not _END:
            yield json.dumps(first, default=str).encode() + b"\n"
        async for item in rest:
            yield json.dumps(item, default=str).encode() + b"\n"
    except DockyardError as exc:
        yield json.dumps({"error": exc.message}).encode() + b"\n"


async def stream_ndjson(items: AsyncIterator[Any]) -> StreamingResponse:
    """Fail with a proper status if the very first step fails; afterwards report in-stream."""
    first = await anext(items, _END)
    return StreamingResponse(_ndjson(first, items), media_type=NDJSON)


async def spool_body(request: Request) -> SpooledTemporaryFile[bytes]:
    spooled: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(  # noqa: SIM115 - caller closes
        max_size=8 * 1024 * 1024
    )
    async for chunk in request.stream():
        spooled.write(chunk)
    spooled.seek(0)
    return spooled


@router.get("/info")
async def info(node: NodeDep) -> AgentInfo:
    return await node.info()


@router.get("/disk")
async def disk(node: NodeDep) -> list[FileSystemUsage]:
    """The file systems the agent writes to, read now (what a deploy checks first)."""
    return await node.disks.read()


@router.get("/health")
async def node_health(node: NodeDep) -> NodeHealth:
    """Both nginx layers, a request through the edge to each site, recent supervision."""
    return await node.node_health()


@router.post("/auth/rotate", status_code=204)
async def rotate_key(body: KeyRotation, request: Request) -> None:
    if not auth.rotate(request.app.state.keys, body.sealed_key):
        raise InvalidInput("the new key must be sealed with the current key")


@router.post("/images/build")
async def build(request: Request, node: NodeDep, repository: Annotated[Repository, Query()],
                tag: Annotated[Tag, Query()], dockerfile: Dockerfile = "Dockerfile",
                build_arg: Annotated[list[BuildArg] | None, Query(max_length=64)] = None,
                memory_mb: Annotated[int | None, Query(ge=6)] = None,
                cpus: Annotated[int | None, Query(ge=1, le=1024)] = None) -> StreamingResponse:
    options = buildconfig.BuildOptions(tuple(build_arg or ()), memory_mb, cpus)
    context = await spool_body(request)
    if dockerfile == buildconfig.GENERATED_DOCKERFILE:  # its build stage reads this machine's
        buildconfig.add_to_context(context, buildconfig.machine_config())  # package config
    target = ImageRef(repository=repository, tag=tag)
    return await stream_ndjson(node.build(context, target, dockerfile, options))


@router.post("/images/import", status_code=204)
async def import_rootfs(request: Request, node: NodeDep, repository: Annotated[Repository, Query()],
                        tag: Annotated[Tag, Query()]) -> None:
    with await spool_body(request) as rootfs:
        await node.import_rootfs(rootfs, ImageRef(repository=repository, tag=tag))


@router.post("/images/pull")
async def pull(ref: ImageRef, node: NodeDep) -> StreamingResponse:
    return await stream_ndjson(node.pull(ref))


@router.post("/images/push")
async def push(ref: ImageRef, node: NodeDep) -> StreamingResponse:
    return await stream_ndjson(node.push(ref))


@router.post("/images/tag", status_code=204)
async def tag_image(body: TagRequest, node: NodeDep) -> None:
    await node.tag(body)


@router.get("/images")
async def list_images(node: NodeDep) -> list[ImageSummary]:
    return await node.images()


@router.delete("/images", status_code=204)
async def remove_image(node: NodeDep, repository: Annotated[Repository, Query()],
                       tag: Annotated[Tag, Query()]) -> None:
    await node.remove_image(ImageRef(repository=repository, tag=tag))


@router.post("/images/prune")
async def prune(body: PruneRequest, node: NodeDep) -> PruneResult:
    return await node.prune(body)


@router.post("/containers", status_code=201)
async def run_container(spec: ContainerSpec, node: NodeDep) -> ContainerSummary:
    return await node.run_container(spec)


@router.get("/containers")
async def list_containers(node: NodeDep, service: Annotated[ServiceName | None, Query()] = None
                          ) -> list[ContainerSummary]:
    return await node.containers({"dockyard.service": service} if service else {})


@router.get("/processes")
async def list_processes(service: Annotated[ServiceName, Query()], node: NodeDep
                         ) -> list[ProcessState]:
    return await processes.service_processes(node.runtime, service)


@router.post("/runs")
async def run_one_off(body: OneOffRun, node: NodeDep) -> StreamingResponse:
    return await stream_ndjson(processes.run_one_off(node.runtime, body))


@router.post("/containers/{name}/stop", status_code=204)
async def stop_container(name: ContainerPath, body: StopRequest, node: NodeDep) -> None:
    await node.stop_container(name, body.grace_seconds)


@router.delete("/containers/{name}", status_code=204)
async def remove_container(name: ContainerPath, node: NodeDep) -> None:
    await node.remove_container(name)


@router.get("/containers/{name}/health")
async def container_health(name: ContainerPath, node: NodeDep) -> ContainerHealth:
    return await node.health(name)


@router.get("/containers/{name}/logs")
async def container_logs(name: ContainerPath, node: NodeDep, follow: bool = False,
                         tail: Annotated[int, Query(ge=0, le=100_000)] = 200) -> StreamingResponse:
    chunks = node.logs(name, follow=follow, tail=tail)
    return StreamingResponse(chunks, media_type="text/plain")


@router.get("/logs")
async def log_page(node: NodeDep, after: Annotated[int, Query(ge=0)] = 0,
                   limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> LogPage:
    """Buffered lines of every managed container after the sequence number `after`."""
    return await node.log_page(after, limit)


@router.post("/probe")
async def probe(body: ProbeRequest, node: NodeDep) -> ProbeResult:
    return await node.probe(body)


@router.post("/volumes", status_code=204)
async def create_volume(body: VolumeRequest, node: NodeDep) -> None:
    await node.create_volume(body)


@router.get("/volumes")
async def list_volumes(service: Annotated[ServiceName, Query()], node: NodeDep) -> list[str]:
    return await node.volumes(service)


@router.get("/volumes/sizes")
async def volume_sizes(service: Annotated[ServiceName, Query()], node: NodeDep
                       ) -> dict[str, int]:
    return await node.volume_sizes(service)


@router.delete("/volumes/{name}", status_code=204)
async def remove_volume(name: ContainerPath, node: NodeDep) -> None:
    await node.remove_volume(name)


@router.put("/sites", status_code=204)
async def apply_site(site: Site, node: NodeDep) -> None:
    await node.apply_site(site)


@router.get("/sites")
async def list_sites(node: NodeDep) -> list[Site]:
    return node.sites()


@router.delete("/sites/{service}", status_code=204)
async def remove_site(service: ServicePath, node: NodeDep) -> None:
    await node.remove_site(service)


def build_node(settings: AgentSettings) -> Node:
    layout = NginxLayout(settings.nginx_dir, settings.nginx_http_port, settings.nginx_https_port)
    return Node(
        state_dir=settings.state_dir, certs_dir=settings.certs_dir,
        runtime=DockerRuntime(settings.docker_host, container_logs=settings.container_logs),
        nginx=Nginx(layout, settings.nginx_binary),
        state_file=StateFile(settings.state_file), log_buffer_bytes=settings.log_buffer_bytes,
        block_metadata=settings.block_metadata,
    )


@asynccontextmanager
async def supervising(node: Node, settings: AgentSettings) -> AsyncIterator[None]:
    """The supervisor runs while the agent serves; it is stopped first when the agent stops,
    so it never restarts what is being stopped on purpose."""
    if settings.supervise_seconds == 0:
        yield
        return
    supervisor = Supervisor(node.nginx_layers(), node.revive_nginx, node.events,
                            interval=settings.supervise_seconds,
                            max_backoff=settings.supervise_max_backoff_seconds)
    task = asyncio.create_task(supervisor.run())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def guard_rules(settings: AgentSettings) -> GuardRules:
    return GuardRules(settings.disk_check_seconds, settings.disk_cleanup_fraction,
                      settings.disk_cleanup_pause_seconds, settings.disk_cleanup_keep_releases)


def create_app(settings: AgentSettings, node: Node | None = None) -> FastAPI:
    """The agent. The key file must exist; the node is restored to its desired state at start."""
    keys = KeyStore(settings.key_file)
    the_node = node or build_node(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_node.restore()
        logs = node_rotator(the_node.nginx, settings.log_files, settings.log_bound,
                            settings.log_rotate_seconds)
        guard = [app.state.disk_guard.run()] if settings.disk_check_seconds else []
        metrics = in_background(app.state.request_metrics.run(), app.state.host_sampler.run(),
                                logs.run(), *guard)
        async with supervising(the_node, settings), metrics:
            yield
        the_node.runtime.close()

    app = FastAPI(title="Dockyard agent", version=code_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.node, app.state.keys = the_node, keys
    app.state.upgrader = Upgrader(settings, Restart())
    app.state.request_metrics = RequestCollector.for_node(the_node, settings.log_bound)
    app.state.host_sampler = HostSampler(the_node.runtime, disks=the_node.disks)
    app.state.disk_guard = DiskGuard(the_node, guard_rules(settings))
    app.include_router(router)
    app.include_router(firewall_routes.router)
    app.include_router(cert_routes.router)
    app.include_router(cache_prune.router)
    app.include_router(disk_guard.router)
    app.include_router(exec_routes.router)
    app.include_router(upgrade_routes.router)
    app.include_router(metrics_routes.router)
    app.add_api_route("/healthz", _healthz, methods=["GET"])
    nonces = NonceCache(settings.signature_max_age_seconds, journal=settings.nonce_file)
    uploads = {**dict.fromkeys(UPLOAD_PATHS, settings.max_upload_bytes),
               UPGRADE_PATH: upgrade_routes.MAX_BUNDLE_BYTES}
    app.add_middleware(SignatureGate, keys=keys, nonces=nonces,
                       limits=BodyLimits(settings.max_body_bytes, uploads))
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    return app


async def _healthz() -> Response:
    """Public liveness, with the running code's version (the upgrade watchdog waits for it)."""
    body = json.dumps({"status": "ok", "version": code_version()})
    return Response(body, media_type="application/json")
