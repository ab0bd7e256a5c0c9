"""The agent's HTTP API. Each route parses, calls one `Node` method, and answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from tempfile import SpooledTemporaryFile
from typing import Annotated, Any

from pydantic import Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

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
from dockyard.agent.parts import Parts
from dockyard.agent.proxy import Nginx
from dockyard.agent.release import UPGRADE_PATH, code_version
from dockyard.agent.request_metrics import RequestCollector, in_background
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.settings import AgentSettings
from dockyard.agent.state import StateFile
from dockyard.agent.supervise import Supervisor
from dockyard.agent.upgrade import Restart, Upgrader
from dockyard.agent.web import Call, InvalidRequest, Param, Routes, http_error, invalid_request
from dockyard.agent.web import path as path_param
from dockyard.agent.web import query as query_param
from dockyard.api.answers import error_response, unexpected
from dockyard.api.middleware import RequestIdMiddleware
from dockyard.kernel.errors import DockyardError, InvalidInput
from dockyard.models.app_metrics import FileSystemUsage
from dockyard.models.fields import BuildArg

NDJSON = "application/x-ndjson"
UPLOAD_PATHS = ("/images/build", "/images/import", exec_routes.BLOBS_PATH)
_END = object()
NAME: Param[str] = path_param("name", ContainerName)
SERVICE: Param[str] = path_param("service", ServiceName)
REPOSITORY: Param[str] = query_param("repository", Repository)
TAG: Param[str] = query_param("tag", Tag)
DOCKERFILE: Param[str] = query_param("dockerfile", ContextPath, "Dockerfile")
BUILD_ARGS: Param[list[str] | None] = query_param(
    "build_arg", Annotated[list[BuildArg] | None, Field(max_length=64)], None, many=True)
MEMORY_MB: Param[int | None] = query_param("memory_mb", Annotated[int | None, Field(ge=6)], None)
CPUS: Param[int | None] = query_param("cpus", Annotated[int | None, Field(ge=1, le=1024)], None)
OF_SERVICE: Param[str | None] = query_param("service", ServiceName | None, None)
FOR_SERVICE: Param[str] = query_param("service", ServiceName)
FOLLOW: Param[bool] = query_param("follow", bool, False)
TAIL: Param[int] = query_param("tail", Annotated[int, Field(ge=0, le=100_000)], 200)
AFTER: Param[int] = query_param("after", Annotated[int, Field(ge=0)], 0)
LIMIT: Param[int] = query_param("limit", Annotated[int, Field(ge=1, le=10_000)], 1000)
routes: Routes[Parts] = Routes()


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


@routes.get("/info")
async def info(call: Call[Parts]) -> AgentInfo:
    return await call.parts.node.info()


@routes.get("/disk")
async def disk(call: Call[Parts]) -> list[FileSystemUsage]:
    """The file systems the agent writes to, read now (what a deploy checks first)."""
    return await call.parts.node.disks.read()


@routes.get("/health")
async def node_health(call: Call[Parts]) -> NodeHealth:
    """Both nginx layers, a request through the edge to each site, recent supervision."""
    return await call.parts.node.node_health()


@routes.post("/auth/rotate", status=204, body=KeyRotation)
async def rotate_key(call: Call[Parts]) -> None:
    if not auth.rotate(call.parts.keys, call.body(KeyRotation).sealed_key):
        raise InvalidInput("the new key must be sealed with the current key")


@routes.post("/images/build", params=(REPOSITORY, TAG, DOCKERFILE, BUILD_ARGS, MEMORY_MB, CPUS))
async def build(call: Call[Parts]) -> StreamingResponse:
    build_args = call[BUILD_ARGS] or []
    options = buildconfig.BuildOptions(tuple(build_args), call[MEMORY_MB], call[CPUS])
    context = await spool_body(call.request)
    dockerfile = call[DOCKERFILE]
    if dockerfile == buildconfig.GENERATED_DOCKERFILE:  # its build stage reads this machine's
        buildconfig.add_to_context(context, buildconfig.machine_config())  # package config
    target = ImageRef(repository=call[REPOSITORY], tag=call[TAG])
    return await stream_ndjson(call.parts.node.build(context, target, dockerfile, options))


@routes.post("/images/import", status=204, params=(REPOSITORY, TAG))
async def import_rootfs(call: Call[Parts]) -> None:
    with await spool_body(call.request) as rootfs:
        await call.parts.node.import_rootfs(rootfs, ImageRef(repository=call[REPOSITORY],
                                                             tag=call[TAG]))


@routes.post("/images/pull", body=ImageRef)
async def pull(call: Call[Parts]) -> StreamingResponse:
    return await stream_ndjson(call.parts.node.pull(call.body(ImageRef)))


@routes.post("/images/push", body=ImageRef)
async def push(call: Call[Parts]) -> StreamingResponse:
    return await stream_ndjson(call.parts.node.push(call.body(ImageRef)))


@routes.post("/images/tag", status=204, body=TagRequest)
async def tag_image(call: Call[Parts]) -> None:
    await call.parts.node.tag(call.body(TagRequest))


@routes.get("/images")
async def list_images(call: Call[Parts]) -> list[ImageSummary]:
    return await call.parts.node.images()


@routes.delete("/images", status=204, params=(REPOSITORY, TAG))
async def remove_image(call: Call[Parts]) -> None:
    await call.parts.node.remove_image(ImageRef(repository=call[REPOSITORY], tag=call[TAG]))


@routes.post("/images/prune", body=PruneRequest)
async def prune(call: Call[Parts]) -> PruneResult:
    return await call.parts.node.prune(call.body(PruneRequest))


@routes.post("/containers", status=201, body=ContainerSpec)
async def run_container(call: Call[Parts]) -> ContainerSummary:
    return await call.parts.node.run_container(call.body(ContainerSpec))


@routes.get("/containers", params=(OF_SERVICE,))
async def list_containers(call: Call[Parts]) -> list[ContainerSummary]:
    service = call[OF_SERVICE]
    return await call.parts.node.containers({"dockyard.service": service} if service else {})


@routes.get("/processes", params=(FOR_SERVICE,))
async def list_processes(call: Call[Parts]) -> list[ProcessState]:
    return await processes.service_processes(call.parts.node.runtime, call[FOR_SERVICE])


@routes.post("/runs", body=OneOffRun)
async def run_one_off(call: Call[Parts]) -> StreamingResponse:
    return await stream_ndjson(processes.run_one_off(call.parts.node.runtime,
                                                     call.body(OneOffRun)))


@routes.post("/containers/{name}/stop", status=204, params=(NAME,), body=StopRequest)
async def stop_container(call: Call[Parts]) -> None:
    await call.parts.node.stop_container(call[NAME], call.body(StopRequest).grace_seconds)


@routes.delete("/containers/{name}", status=204, params=(NAME,))
async def remove_container(call: Call[Parts]) -> None:
    await call.parts.node.remove_container(call[NAME])


@routes.get("/containers/{name}/health", params=(NAME,))
async def container_health(call: Call[Parts]) -> ContainerHealth:
    return await call.parts.node.health(call[NAME])


@routes.get("/containers/{name}/logs", params=(NAME, FOLLOW, TAIL))
async def container_logs(call: Call[Parts]) -> StreamingResponse:
    chunks = call.parts.node.logs(call[NAME], follow=call[FOLLOW], tail=call[TAIL])
    return StreamingResponse(chunks, media_type="text/plain")


@routes.get("/logs", params=(AFTER, LIMIT))
async def log_page(call: Call[Parts]) -> LogPage:
    """Buffered lines of every managed container after the sequence number `after`."""
    return await call.parts.node.log_page(call[AFTER], call[LIMIT])


@routes.post("/probe", body=ProbeRequest)
async def probe(call: Call[Parts]) -> ProbeResult:
    return await call.parts.node.probe(call.body(ProbeRequest))


@routes.post("/volumes", status=204, body=VolumeRequest)
async def create_volume(call: Call[Parts]) -> None:
    await call.parts.node.create_volume(call.body(VolumeRequest))


@routes.get("/volumes", params=(FOR_SERVICE,))
async def list_volumes(call: Call[Parts]) -> list[str]:
    return await call.parts.node.volumes(call[FOR_SERVICE])


@routes.get("/volumes/sizes", params=(FOR_SERVICE,))
async def volume_sizes(call: Call[Parts]) -> dict[str, int]:
    return await call.parts.node.volume_sizes(call[FOR_SERVICE])


@routes.delete("/volumes/{name}", status=204, params=(NAME,))
async def remove_volume(call: Call[Parts]) -> None:
    await call.parts.node.remove_volume(call[NAME])


@routes.put("/sites", status=204, body=Site)
async def apply_site(call: Call[Parts]) -> None:
    await call.parts.node.apply_site(call.body(Site))


@routes.get("/sites")
async def list_sites(call: Call[Parts]) -> list[Site]:
    return call.parts.node.sites()


@routes.delete("/sites/{service}", status=204, params=(SERVICE,))
async def remove_site(call: Call[Parts]) -> None:
    await call.parts.node.remove_site(call[SERVICE])


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


ROUTES = (routes, firewall_routes.routes, cert_routes.routes, cache_prune.routes,
          disk_guard.routes, exec_routes.routes, upgrade_routes.routes, metrics_routes.routes)
ANSWERS = {InvalidRequest: invalid_request, HTTPException: http_error,
           DockyardError: error_response, Exception: unexpected}


def build_parts(settings: AgentSettings, node: Node) -> Parts:
    return Parts(node=node, keys=KeyStore(settings.key_file),
                 upgrader=Upgrader(settings, Restart()),
                 request_metrics=RequestCollector.for_node(node, settings.log_bound),
                 host_sampler=HostSampler(node.runtime, disks=node.disks),
                 disk_guard=DiskGuard(node, guard_rules(settings)))


def lifespan_of(parts: Parts, settings: AgentSettings
                ) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await parts.node.restore()
        logs = node_rotator(parts.node.nginx, settings.log_files, settings.log_bound,
                            settings.log_rotate_seconds)
        guard = [parts.disk_guard.run()] if settings.disk_check_seconds else []
        metrics = in_background(parts.request_metrics.run(), parts.host_sampler.run(),
                                logs.run(), *guard)
        async with supervising(parts.node, settings), metrics:
            yield
        parts.node.runtime.close()

    return lifespan


def middleware(settings: AgentSettings, keys: KeyStore) -> list[Middleware]:
    """The request id outermost, then the signature gate (as FastAPI stacked them)."""
    nonces = NonceCache(settings.signature_max_age_seconds, journal=settings.nonce_file)
    uploads = {**dict.fromkeys(UPLOAD_PATHS, settings.max_upload_bytes),
               UPGRADE_PATH: upgrade_routes.MAX_BUNDLE_BYTES}
    return [Middleware(RequestIdMiddleware),
            Middleware(SignatureGate, keys=keys, nonces=nonces,
                       limits=BodyLimits(settings.max_body_bytes, uploads))]


def create_app(settings: AgentSettings, node: Node | None = None) -> Starlette:
    """The agent. The key file must exist; the node is restored to its desired state at start."""
    parts = build_parts(settings, node or build_node(settings))
    bound = [route for group in ROUTES for route in group.bind(parts)]
    healthz = Route("/healthz", _healthz, methods=["GET"])
    healthz.methods = {"GET"}
    app = Starlette(routes=[*bound, healthz], middleware=middleware(settings, parts.keys),
                    exception_handlers=ANSWERS, lifespan=lifespan_of(parts, settings))
    for name in ("node", "keys", "upgrader", "request_metrics", "host_sampler", "disk_guard"):
        setattr(app.state, name, getattr(parts, name))  # for tests and `main`
    return app


async def _healthz(request: Request) -> Response:
    """Public liveness, with the running code's version (the upgrade watchdog waits for it)."""
    body = json.dumps({"status": "ok", "version": code_version()})
    return Response(body, media_type="application/json")
