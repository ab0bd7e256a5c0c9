"""The server inventory. Providers (later issues) register servers through `register_server`."""

from __future__ import annotations

import asyncio
import ssl

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import tls
from dockyard.core import traffic
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import public_servers, server_by_id
from dockyard.core.platform import Platform
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict
from dockyard.models.app_metric_tables import HostStatsLatest
from dockyard.models.app_metrics import FileSystemUsage, HostStats
from dockyard.models.base import utcnow
from dockyard.models.enums import ServerStatus
from dockyard.models.schemas import ServerAdopt, ServerPublic
from dockyard.models.tables import Server, ServerEvent


async def list_servers(p: Platform, actor: Actor) -> list[ServerPublic]:
    async def tx(s: AsyncSession) -> list[ServerPublic]:
        actor.require(Permission.READ)
        query = select(Server).where(Server.workspace_id == actor.workspace_id)
        found = await public_servers(s, list(await s.scalars(query.order_by(Server.name))))
        return await _with_disks(s, found)

    return await p.db.read(tx)


async def get_server(p: Platform, actor: Actor, server_id: str) -> ServerPublic:
    async def tx(s: AsyncSession) -> ServerPublic:
        actor.require(Permission.READ)
        found = await public_servers(s, [await server_by_id(s, actor, server_id)])
        return (await _with_disks(s, found))[0]

    return await p.db.read(tx)


async def _with_disks(s: AsyncSession, servers: list[ServerPublic]) -> list[ServerPublic]:
    """With the file systems each agent last reported."""
    query = select(HostStatsLatest).where(HostStatsLatest.server_id.in_([x.id for x in servers]))
    hosts = {row.server_id: HostStats.model_validate_json(row.stats)
             for row in await s.scalars(query)}
    return [x.model_copy(update={"disk": _disks(hosts[x.id])}) if x.id in hosts else x
            for x in servers]


def _disks(host: HostStats) -> list[FileSystemUsage]:
    """An agent older than the file system figures told Docker's only."""
    return host.file_systems or [FileSystemUsage(
        roles=["docker"], path="", total_bytes=host.disk_total_bytes,
        free_bytes=host.disk_total_bytes - host.disk_used_bytes)]


async def _add(s: AsyncSession, server: Server) -> ServerPublic:
    query = select(Server.id).where(
        Server.workspace_id == server.workspace_id, Server.name == server.name
    )
    if await s.scalar(query):
        raise Conflict(f"a server named {server.name!r} is already in the inventory")
    s.add(server)
    await s.flush()
    return ServerPublic.model_validate(server)


async def register_server(
    p: Platform, workspace_id: str, *, name: str, provider: str, ip: str = "",
    provider_id: str = "", tags: list[str] | None = None, agent_port: int = 8421,
    agent_fingerprint: str = "", agent_insecure_http: bool = False,
) -> ServerPublic:
    """Add a server to a workspace's inventory (called by providers, not by users)."""
    server = Server(
        workspace_id=workspace_id, name=name, provider=provider, ip=ip, agent_port=agent_port,
        provider_id=provider_id, tags=tags or [], status=ServerStatus.PENDING,
        agent_fingerprint=agent_fingerprint, agent_insecure_http=agent_insecure_http,
    )
    return await p.db.write(lambda s: _add(s, server))


async def pin_certificate(p: Platform, server_id: str, fingerprint: str) -> None:
    """Pin the fingerprint a provider read from the agent's own disk (local machines only)."""

    async def tx(s: AsyncSession) -> None:
        server = await s.get_one(Server, server_id)
        server.agent_fingerprint, server.agent_insecure_http = fingerprint, False

    await p.db.write(tx)


async def presented_fingerprint(ip: str, port: int) -> str:
    """The fingerprint of the certificate the agent at ip:port presents now (TOFU). No agent
    there is a conflict with the state of that server, which its admin can resolve."""
    try:
        return await asyncio.to_thread(tls.fetch_fingerprint, ip, port)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise Conflict(
            f"could not read the TLS certificate of the agent at {ip} port {port} ({exc}); "
            "start the agent there, or pass the agent_fingerprint that `dockyard-agent "
            "fingerprint` prints on the server") from exc


async def adopt_server(p: Platform, actor: Actor, body: ServerAdopt) -> ServerPublic:
    """Add a server whose agent already holds this workspace's key (admins), pinning its
    certificate: the given fingerprint, or else the one its agent presents now."""
    actor.require(Permission.MANAGE_SERVERS)
    fingerprint = "" if body.insecure_http else (
        body.agent_fingerprint or await presented_fingerprint(str(body.ip), body.agent_port))
    server = Server(
        workspace_id=actor.workspace_id, name=body.name, provider=body.provider,
        ip=str(body.ip), agent_port=body.agent_port, provider_id=body.name,
        status=ServerStatus.PENDING, agent_fingerprint=fingerprint,
        agent_insecure_http=body.insecure_http,
    )

    async def tx(s: AsyncSession) -> ServerPublic:
        actor.require(Permission.MANAGE_SERVERS)
        return await _add(s, server)

    return await p.db.write(tx, info=actor.audit_info)


async def pin_server(p: Platform, actor: Actor, server_id: str,
                     fingerprint: str | None = None) -> ServerPublic:
    """Pin a server's agent certificate again (admins): `fingerprint`, or else the one its
    agent presents now. For a certificate replaced on purpose, or a server added without."""
    actor.require(Permission.MANAGE_SERVERS)
    server = await get_server(p, actor, server_id)
    pin = fingerprint or await presented_fingerprint(server.ip, server.agent_port)

    async def tx(s: AsyncSession) -> ServerPublic:
        row = await server_by_id(s, actor, server_id)
        row.agent_fingerprint, row.agent_insecure_http = pin, False
        await s.flush()
        return ServerPublic.model_validate(row)

    return await p.db.write(tx, info=actor.audit_info)


async def remove_server(p: Platform, actor: Actor, server_id: str,
                        on_change: traffic.OnChange | None = None) -> None:
    """Forget a server: it leaves the inventory (and its addresses the DNS records of its
    services' domains); the machine itself is not touched."""

    async def tx(s: AsyncSession) -> None:
        server = await server_by_id(s, actor, server_id)
        actor.require(Permission.MANAGE_SERVERS)
        await delete_recorded(s, server)

    await p.db.write(tx, info=actor.audit_info)
    await traffic.safely(on_change or traffic.dns_follows(p))


async def drain_server(p: Platform, actor: Actor, server_id: str,
                       on_change: traffic.OnChange | None = None) -> ServerPublic:
    """Take a server's copies out of traffic and DNS (admins): its services' traffic goes
    to their other servers. Deploys still update it, so undraining is instant."""
    return await _set_drained(p, actor, server_id, True, on_change or traffic.dns_follows(p))


async def undrain_server(p: Platform, actor: Actor, server_id: str,
                         on_change: traffic.OnChange | None = None) -> ServerPublic:
    """Let a drained server take its services' traffic again (admins)."""
    return await _set_drained(p, actor, server_id, False, on_change or traffic.dns_follows(p))


async def _set_drained(p: Platform, actor: Actor, server_id: str, drained: bool,
                       on_change: traffic.OnChange) -> ServerPublic:
    """Drain or undrain, with a server event; DNS follows when it changed."""
    async def tx(s: AsyncSession) -> tuple[ServerPublic, bool]:
        actor.require(Permission.MANAGE_SERVERS)
        row = await server_by_id(s, actor, server_id)
        changed = (row.drained_at is not None) != drained
        if changed:
            _record_drain(s, row, drained)
            await s.flush()
        return (await public_servers(s, [row]))[0], changed

    server, changed = await p.db.write(tx, info=actor.audit_info)
    if changed:
        await traffic.safely(on_change)
    return server


def _record_drain(s: AsyncSession, row: Server, drained: bool) -> None:
    row.drained_at = utcnow() if drained else None
    message = (f"drained: its services' traffic and DNS go to their other servers (`dockyard "
               f"servers undrain {row.name}` takes them back)" if drained
               else "undrained: it takes its services' traffic again")
    s.add(ServerEvent(server_id=row.id, kind="drained" if drained else "undrained",
                      message=message))
