"""A stateful service on its server, through the server's agent: its image there, its
container started and answering, its firewall rule; and taking it away again."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import ImageRef
from dockyard.deploy import stateful as shape
from dockyard.deploy.run import Connect
from dockyard.kernel.errors import ServerFailed
from dockyard.models.enums import ServiceKind
from dockyard.models.schemas import ServerPublic
from dockyard.providers import images

READY_SECONDS = 180.0
STOP_SECONDS = 30  # Postgres and Redis flush to disk on SIGTERM: give them time
_VERSION = {  # what each engine's log says when it starts
    ServiceKind.POSTGRES: re.compile(r"starting PostgreSQL (\d+(?:\.\d+)?)"),
    ServiceKind.REDIS: re.compile(r"(?:Redis version=|v=)(\d+\.\d+(?:\.\d+)?)"),
}


AGENT_FAILURES = (AgentError, httpx.HTTPError, OSError)


class PortTaken(ServerFailed):
    """Something on the server (not a stateful service Dockyard knows) holds the port."""


@asynccontextmanager
async def on_server(connect: Connect, server: ServerPublic) -> AsyncIterator[NodeAgentClient]:
    """A client of the server's agent; failing to reach it, or what it refuses, is a
    ServerFailed naming the server."""
    try:
        async with await connect(server) as client:
            yield client
    except AGENT_FAILURES as exc:
        why = exc.detail if isinstance(exc, AgentError) else (str(exc) or type(exc).__name__)
        raise ServerFailed(f"server {server.name}: {why}") from exc


async def put_on_server(client: NodeAgentClient, instance: shape.Instance,
                        allowed: list[str]) -> str:
    """Start the service (idempotent: a running one is kept) and wait until it answers;
    the version its log names ("" when it names none)."""
    await _ensure_image(client, instance.image, instance.kind)
    spec = shape.container_spec(instance)
    await _allow(client, instance, allowed)  # before the port is published: never open
    try:
        await client.run_container(spec)
    except AgentError as exc:
        if "port is already allocated" in exc.detail or "address already in use" in exc.detail:
            await client.remove_container(spec.name)  # Docker created it before the bind failed
            raise PortTaken(f"could not start {spec.name}: {exc.detail}") from exc
        raise ServerFailed(f"could not start {spec.name}: {exc.detail}") from exc
    await wait_ready(client, spec.name)
    return await _logged_version(client, spec.name, instance.kind)


async def _ensure_image(client: NodeAgentClient, image: ImageRef, kind: ServiceKind) -> None:
    if any(image.reference in found.tags for found in await client.images()):
        return
    if shape.is_offline(image):
        await _import_offline(client, image, kind)
        return
    try:
        async for _ in client.pull(image):
            pass
    except AgentError as exc:
        raise ServerFailed(f"the server could not pull {image.reference} ({exc.detail}); "
                           "leave out --version and --image to run the offline image") from exc


async def _import_offline(client: NodeAgentClient, image: ImageRef, kind: ServiceKind) -> None:
    tarball = images.cached_tarball(images.RECIPES[kind.value], images.ImageSettings())
    if not tarball.path.exists():
        raise ServerFailed(f"the server has no {image.reference} and this machine has none "
                           f"cached; run `dockyard images bootstrap --image {kind.value}`")
    await client.import_rootfs(tarball.path, image)


async def _allow(client: NodeAgentClient, instance: shape.Instance, allowed: list[str]) -> None:
    """Only the workspace's servers may reach the published port."""
    await client.put_firewall_rule(shape.firewall_rule(instance, allowed))


async def keep_running(client: NodeAgentClient, instance: shape.Instance, allowed: list[str],
                       states: dict[str, str]) -> str | None:
    """Put back a service whose container went missing or stopped (`states`: what the
    server runs, by container name) and refresh its firewall rule to today's servers; what
    was put back, in a sentence."""
    spec = shape.container_spec(instance)
    await _allow(client, instance, allowed)
    if states.get(spec.name) == "running":
        return None
    await client.run_container(spec)
    was = states.get(spec.name, "missing")
    return f"started stateful service {instance.project}/{instance.service} again (it was {was})"


async def wait_ready(client: NodeAgentClient, name: str) -> None:
    """Until Docker's health check passes; an exited container is reported at once, with its
    exit code and last lines."""
    deadline = time.monotonic() + READY_SECONDS
    while (health := await client.health(name)).health != "healthy":
        if health.state in ("exited", "dead") or time.monotonic() > deadline:
            tail = await _tail(client, name)
            why = "it exited" if health.state in ("exited", "dead") else "it did not answer"
            raise ServerFailed(f"{name} did not start: {why} ({health.state}); last lines:\n"
                               f"{tail}")
        await asyncio.sleep(0.5)


async def _tail(client: NodeAgentClient, name: str, lines: int = 20) -> str:
    return "".join([chunk async for chunk in client.logs(name, tail=lines)]).strip()


async def _logged_version(client: NodeAgentClient, name: str, kind: ServiceKind) -> str:
    found = _VERSION[kind].search(await _tail(client, name, 200))
    return found.group(1) if found else ""


async def container_state(client: NodeAgentClient, instance: shape.Instance
                          ) -> tuple[str | None, int | None]:
    """What Docker says of the container now, and its volume's size (None if unknown)."""
    state: str | None
    try:
        state = (await client.health(shape.container_name(instance.site))).state
    except AgentError as exc:
        state = "missing" if exc.status_code == 404 else None
    size = (await client.volume_sizes(instance.site)).get(shape.volume_name(instance.site))
    return state, size if size is not None and size >= 0 else None


async def remove_from_server(client: NodeAgentClient, instance: shape.Instance, *,
                             keep_rule: bool, data: bool = False) -> None:
    """Stop and remove the container; its data stays unless `data`."""
    name = shape.container_name(instance.site)
    await client.stop_container(name, STOP_SECONDS)
    await client.remove_container(name)
    if not keep_rule:
        await client.remove_firewall_rule(name)
    if data:
        await client.remove_volume(shape.volume_name(instance.site))
