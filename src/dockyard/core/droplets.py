"""The workspace's DigitalOcean account as Dockyard sees it: the client made from its stored
credential (read at each call: rotating the token needs nothing else), sizes, regions, the
managed droplets, and destroying them. Only droplets tagged deployed-via-api are listed or
destroyed without force."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import credentials, servers
from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.kernel.errors import Conflict, DockyardError, InvalidInput, NotFound
from dockyard.kernel.settings import Settings
from dockyard.models.provision import DropletPublic, RegionPublic, SizePublic
from dockyard.models.tables import Server
from dockyard.providers.digitalocean import CREDENTIAL_HELP, DigitalOcean, Droplet, Retries

PROVIDER = "digitalocean"


class MissingCredential(DockyardError):
    """The named DigitalOcean credential is not stored in this workspace."""

    status_code = 404


def workspace_tag(workspace_id: str) -> str:
    return f"dockyard-ws-{workspace_id[:8]}"


def public_url(settings: Settings) -> str:
    """The control plane's URL as droplets reach it (they fetch the agent from it)."""
    url = settings.public_url or ""
    host = urlsplit(url).hostname or ""
    if not host or _loopback(host):
        raise Conflict(f"new servers fetch the agent from the control plane's public URL, "
                       f"and {url or settings.api_url!r} is not one a droplet can reach: set "
                       "DOCKYARD_PUBLIC_URL to the control plane's public address")
    return url


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")
    return address.is_loopback or address.is_unspecified


async def client(p: Platform, workspace_id: str, credential: str) -> DigitalOcean:
    """A client with the credential's token as stored now."""
    try:
        token = await credentials.provider_token(p, workspace_id, credential)
    except NotFound:
        raise MissingCredential(f"this workspace has no credential named {credential!r}: "
                           f"{CREDENTIAL_HELP}") from None
    settings = p.settings
    retries = Retries(backoff=settings.digitalocean_retry_seconds)
    return DigitalOcean(token, settings.digitalocean_api_url, retries=retries,
                        poll_interval=settings.provision_poll_seconds)


async def sizes(p: Platform, actor: Actor, credential: str) -> list[SizePublic]:
    actor.require(Permission.READ)
    found = await asyncio.to_thread((await client(p, actor.workspace_id, credential)).sizes)
    return [SizePublic(slug=s.slug, memory=s.memory_mb, vcpus=s.vcpus, disk=s.disk_gb,
                       price_monthly=s.price_monthly, price_hourly=s.price_hourly,
                       regions=list(s.regions)) for s in found if s.available]


async def regions(p: Platform, actor: Actor, credential: str) -> list[RegionPublic]:
    actor.require(Permission.READ)
    found = await asyncio.to_thread((await client(p, actor.workspace_id, credential)).regions)
    return [RegionPublic(slug=r.slug, name=r.name, available=r.available, sizes=list(r.sizes))
            for r in found]


def check_offer(do: DigitalOcean, region: str, size: str) -> None:
    """The size exists and is offered in the region (blocking: DigitalOcean's size list)."""
    offered = {s.slug: s for s in do.sizes() if s.available}
    if size not in offered:
        raise InvalidInput(f"{size!r} is not a droplet size DigitalOcean offers: see "
                           "`dockyard servers sizes`")
    if region not in offered[size].regions:
        raise InvalidInput(f"size {size} is not offered in region {region!r}; it is in "
                           f"{', '.join(offered[size].regions) or 'no region'}")


async def _inventory(p: Platform, workspace_id: str) -> dict[str, str]:
    """Droplet id -> server name, for this workspace's DigitalOcean servers."""
    async def tx(s: AsyncSession) -> dict[str, str]:
        rows = await s.execute(select(Server.provider_id, Server.name).where(
            Server.workspace_id == workspace_id, Server.provider == PROVIDER))
        return {provider_id: name for provider_id, name in rows if provider_id}

    return await p.db.read(tx)


def _public(droplet: Droplet, inventory: dict[str, str]) -> DropletPublic:
    return DropletPublic(id=droplet.id, name=droplet.name, status=droplet.status,
                         ip=droplet.ip, region=droplet.region, size=droplet.size,
                         tags=list(droplet.tags), server=inventory.get(str(droplet.id)))


async def list_droplets(p: Platform, actor: Actor, credential: str) -> list[DropletPublic]:
    """The account's managed droplets (no other), each with its server if it has one."""
    actor.require(Permission.MANAGE_SERVERS)
    do = await client(p, actor.workspace_id, credential)
    found = await asyncio.to_thread(do.list_droplets)
    inventory = await _inventory(p, actor.workspace_id)
    return [_public(droplet, inventory) for droplet in found]


async def destroy_droplet(p: Platform, actor: Actor, droplet_id: int, credential: str,
                          force: bool = False) -> None:
    """Destroy a droplet that is no server of the inventory; an unmanaged one only forced."""
    actor.require(Permission.MANAGE_SERVERS)
    server = (await _inventory(p, actor.workspace_id)).get(str(droplet_id))
    if server is not None:
        raise Conflict(f"droplet {droplet_id} is server {server}: `dockyard servers destroy "
                       f"{server}` drains it, destroys it and removes it from the inventory")
    do = await client(p, actor.workspace_id, credential)
    await asyncio.to_thread(do.destroy, droplet_id, force)


async def destroy_quietly(do: DigitalOcean, droplet_id: int) -> str:
    """Destroy a managed droplet; an empty string, or why it could not be."""
    try:
        await asyncio.to_thread(do.destroy, droplet_id)
    except NotFound:
        return ""
    except Exception as exc:  # reported to the person, never lost
        return f"destroying droplet {droplet_id} failed ({exc}): destroy it with `dockyard " \
               f"servers destroy --droplet {droplet_id}`"
    return ""


async def named(do: DigitalOcean, name: str) -> list[int]:
    """Managed droplets named `name`: a create that failed may have made one."""
    try:
        found = await asyncio.to_thread(do.list_droplets)
    except DockyardError:
        return []
    return [droplet.id for droplet in found if droplet.name == name]


async def destroy_server(p: Platform, actor: Actor, server_id: str, credential: str) -> None:
    """Drain a provisioned server, destroy its droplet, then forget it (DNS follows)."""
    actor.require(Permission.MANAGE_SERVERS)
    server = await servers.get_server(p, actor, server_id)
    if server.provider != PROVIDER:
        raise Conflict(f"server {server.name} was not provisioned on DigitalOcean: `dockyard "
                       f"servers remove {server.name}` forgets it; its machine is yours")
    do = await client(p, actor.workspace_id, credential)
    await servers.drain_server(p, actor, server_id)
    if server.provider_id:
        with contextlib.suppress(NotFound):  # gone already: forgetting it is what is left
            await asyncio.to_thread(do.destroy, int(server.provider_id))
    await servers.remove_server(p, actor, server_id)
