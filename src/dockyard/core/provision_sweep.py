"""Servers a control plane left `provisioning` when it stopped in the middle (provisioning runs
inside the API process): a periodic job of the worker settles each once it is older than any
live provisioning run can be. Its agent answers a signed call: it joins as `active`. Otherwise
its droplet is destroyed and it is kept as `failed` with the reason. When DigitalOcean cannot
be asked (no credential, an error), it stays `provisioning` and is tried again at the next
tick: no server is ever forgotten. Each server is claimed in a write transaction first, so
several workers may run the job at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import agents, droplets, fleet, logcollect
from dockyard.core.platform import Platform
from dockyard.kernel.errors import DockyardError, NotFound
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.kernel.settings import Settings
from dockyard.models.base import utcnow
from dockyard.models.enums import ServerStatus
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import ProviderCredential, Server, ServerEvent
from dockyard.providers.digitalocean import CREDENTIAL_HELP, DigitalOcean, Droplet

log = logging.getLogger("dockyard.provision")
SETTLE_TASK = "servers.settle"
INTERRUPTED = "provisioning was interrupted (the control plane restarted?)"


class Unsettled(DockyardError):
    """DigitalOcean cannot be asked about the server now: tried again at the next tick."""


@dataclass(frozen=True)
class Claim:
    server: ServerPublic
    since: datetime  # its updated_at before the claim, put back when it stays unsettled


@dataclass(frozen=True)
class Located:
    """One of the server's droplets, and the client of the account that holds it."""

    do: DigitalOcean
    droplet: Droplet


def limit_seconds(settings: Settings) -> float:
    """How long a live provisioning run may leave its server's row untouched."""
    return settings.provision_ready_seconds + settings.provision_active_seconds


async def settle_all(p: Platform) -> list[str]:
    """Settle every server left `provisioning` longer than the limit; what was done."""
    done = []
    for claim in await _claim(p, utcnow() - timedelta(seconds=limit_seconds(p.settings))):
        try:
            done.append(await settle(p, claim.server))
        except Exception as exc:  # this server waits for the next tick; the others go on
            await _release(p, claim)
            done.append(f"server {claim.server.name} stays provisioning until the next try: "
                        f"{str(exc) or type(exc).__name__}")
    return done


async def _claim(p: Platform, cutoff: datetime) -> list[Claim]:
    """The stale servers, each marked fresh so that no other worker takes it meanwhile."""
    async def tx(s: AsyncSession) -> list[Claim]:
        stale = select(Server).where(Server.status == ServerStatus.PROVISIONING,
                                     Server.updated_at < cutoff)
        claims = []
        for row in list(await s.scalars(stale)):
            taken = await s.execute(update(Server).where(
                Server.id == row.id, Server.status == ServerStatus.PROVISIONING,
                Server.updated_at < cutoff).values(updated_at=utcnow())
                .execution_options(synchronize_session=False))
            if getattr(taken, "rowcount", 0):
                claims.append(Claim(ServerPublic.model_validate(row), row.updated_at))
        return claims

    return await p.db.write(tx)


async def _release(p: Platform, claim: Claim) -> None:
    async def tx(s: AsyncSession) -> None:
        await s.execute(update(Server).where(
            Server.id == claim.server.id, Server.status == ServerStatus.PROVISIONING)
            .values(updated_at=claim.since).execution_options(synchronize_session=False))

    await p.db.write(tx)


async def settle(p: Platform, server: ServerPublic) -> str:
    """`active` if its agent answers, else `failed` with its droplet destroyed."""
    if server.ip and (seen := await _answer(p, server)):
        return await _activate(p, server, seen)
    found = await _droplets_of(p, server)
    address = next((each.droplet.ip for each in found if each.droplet.ip), "")
    if not server.ip and address:
        located = server.model_copy(update={"ip": address})
        if seen := await _answer(p, located):
            return await _activate(p, located, seen)
    for each in found:
        with contextlib.suppress(NotFound):  # gone already
            await asyncio.to_thread(each.do.destroy, each.droplet.id)
    return await _finish(p, server, "provision_failed", _failure(server, found),
                         status=ServerStatus.FAILED)


async def _answer(p: Platform, server: ServerPublic) -> fleet.Observation | None:
    secret = await agents.secret_for(p, server.workspace_id)
    seen = await fleet.observe(server, agents.client_factory({server.workspace_id: secret}))
    return None if seen.status == ServerStatus.UNREACHABLE else seen


async def _activate(p: Platform, server: ServerPublic, seen: fleet.Observation) -> str:
    message = (f"{INTERRUPTED}, but its agent {seen.agent_version} answers: it joined the "
               f"inventory as {seen.status.value}")
    return await _finish(p, server, "provisioned", message, status=seen.status, ip=server.ip,
                         agent_version=seen.agent_version, status_reason=seen.reason)


def _failure(server: ServerPublic, found: list[Located]) -> str:
    if found:
        return f"{INTERRUPTED} and its agent never answered; its droplet was destroyed"
    if server.provider_id:
        return (f"{INTERRUPTED} and its agent never answered; its droplet "
                f"{server.provider_id} no longer exists")
    return f"{INTERRUPTED} before its droplet was created"


async def _droplets_of(p: Platform, server: ServerPublic) -> list[Located]:
    """Its droplets in each DigitalOcean account of its workspace (by id, or by name when
    it was never told its id: the create may have made one)."""
    names = await _credentials(p, server.workspace_id)
    if not names:
        raise Unsettled(f"its workspace has no DigitalOcean credential to find its droplet "
                        f"with: {CREDENTIAL_HELP}")
    found: dict[int, Located] = {}
    for name in names:
        do = await droplets.client(p, server.workspace_id, name)
        for droplet in await asyncio.to_thread(do.list_droplets):
            if _is_of(server, droplet):
                found.setdefault(droplet.id, Located(do, droplet))
    return list(found.values())


def _is_of(server: ServerPublic, droplet: Droplet) -> bool:
    if droplets.workspace_tag(server.workspace_id) not in droplet.tags:
        return False
    if server.provider_id:
        return str(droplet.id) == server.provider_id
    return droplet.name == server.name


async def _credentials(p: Platform, workspace_id: str) -> list[str]:
    async def tx(s: AsyncSession) -> list[str]:
        query = select(ProviderCredential.name).where(
            ProviderCredential.workspace_id == workspace_id,
            ProviderCredential.provider == droplets.PROVIDER)
        return list(await s.scalars(query.order_by(ProviderCredential.name)))

    return await p.db.read(tx)


async def _finish(p: Platform, server: ServerPublic, kind: str, message: str,
                  **values: object) -> str:
    """Record the outcome and its server event, unless it was settled meanwhile."""
    async def tx(s: AsyncSession) -> str:
        row = await s.get(Server, server.id)
        if row is None or row.status != ServerStatus.PROVISIONING:
            return f"server {server.name} was settled elsewhere"
        for key, value in {"status_reason": message, **values}.items():
            setattr(row, key, value)
        s.add(ServerEvent(server_id=row.id, kind=kind, message=message))
        return f"server {server.name}: {message}"

    return await p.db.write(tx)


TASKS = Tasks()
TASKS.every(SETTLE_TASK, "* * * * *", SETTLE_TASK)


@TASKS.task(SETTLE_TASK, max_attempts=1, coalesce=True)
async def settle_job(context: JobContext, payload: dict[str, Any]) -> None:
    for sentence in await settle_all(logcollect._platform(context)):
        log.info("%s", sentence)
