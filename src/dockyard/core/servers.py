"""The server inventory. Providers (later issues) register servers through `register_server`."""

from __future__ import annotations

import asyncio
import ssl

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import tls
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import server_by_id
from dockyard.core.platform import Platform
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict
from dockyard.models.enums import ServerStatus
from dockyard.models.schemas import ServerAdopt, ServerPublic
from dockyard.models.tables import Server


async def list_servers(p: Platform, actor: Actor) -> list[ServerPublic]:
    async def tx(s: AsyncSession) -> list[ServerPublic]:
        actor.require(Permission.READ)
        query = select(Server).where(Server.workspace_id == actor.workspace_id)
        rows = await s.scalars(query.order_by(Server.name))
        return [ServerPublic.model_validate(r) for r in rows]

    return await p.db.read(tx)


async def get_server(p: Platform, actor: Actor, server_id: str) -> ServerPublic:
    async def tx(s: AsyncSession) -> ServerPublic:
        actor.require(Permission.READ)
        return ServerPublic.model_validate(await server_by_id(s, actor, server_id))

    return await p.db.read(tx)


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


async def remove_server(p: Platform, actor: Actor, server_id: str) -> None:
    """Forget a server: it leaves the inventory; the machine itself is not touched."""

    async def tx(s: AsyncSession) -> None:
        server = await server_by_id(s, actor, server_id)
        actor.require(Permission.MANAGE_SERVERS)
        await delete_recorded(s, server)

    await p.db.write(tx, info=actor.audit_info)
