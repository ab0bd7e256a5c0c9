"""Provision servers on DigitalOcean (admins): each droplet gets user-data that installs the
agent with this workspace's agent key and a certificate the control plane made (so it is
pinned from the start), joins the inventory at once as `provisioning`, and becomes `active`
once its agent answers a signed call. A droplet that fails on the way is destroyed and its
server kept as `failed` with the reason (`dockyard servers remove` forgets it): none is ever
left untracked. The work goes on if the one watching it goes away."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import release, tls
from dockyard.agent.auth import derive_agent_key
from dockyard.core import agents, droplets, fleet, install
from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.kernel.errors import DockyardError, NotFound
from dockyard.models.enums import ServerStatus
from dockyard.models.provision import ProvisionEvent, ProvisionRequest
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server, Snapshot
from dockyard.providers import cloudinit
from dockyard.providers.digitalocean import DigitalOcean, Droplet

Emit = Callable[[ProvisionEvent], None]
_RUNNING: set[asyncio.Task[None]] = set()


class ProvisionFailed(DockyardError):
    status_code = 502


@dataclass(frozen=True)
class Run:
    """One provisioning call: what every droplet of it shares."""

    p: Platform
    actor: Actor
    do: DigitalOcean
    body: ProvisionRequest
    url: str
    secret: str
    snapshot: Snapshot | None
    requirements: tuple[str, ...]

    @property
    def image(self) -> str | int:
        return (int(self.snapshot.provider_id) if self.snapshot
                else self.p.settings.digitalocean_image)


def agent_files(run: Run, pair: tls.CertificatePair) -> tuple[install.FileToWrite, ...]:
    """The agent's unit, environment, key and TLS files for a provisioned server."""
    launch = cloudinit.agent_launch()
    machine = install.Machine(run.p.settings, cloudinit.LAYOUT.python, {})
    plan = install.node_install_plan(machine, derive_agent_key(run.secret), launch)
    files = launch.certificate_files
    return (*plan.files, install.FileToWrite(files.certificate, pair.certificate_pem),
            install.FileToWrite(files.private_key, pair.private_key_pem, 0o600))


def boot_plan(run: Run, pair: tls.CertificatePair) -> cloudinit.BootPlan:
    bundle = release.current_bundle()
    return cloudinit.BootPlan(
        run.url, bundle.version, bundle.sha256, run.requirements,
        agent_files(run, pair), from_snapshot=run.snapshot is not None,
        snapshot_requirements_digest=run.snapshot.requirements_digest if run.snapshot else "")


async def provision(p: Platform, actor: Actor, body: ProvisionRequest
                    ) -> AsyncIterator[ProvisionEvent]:
    """Check the request (refusals raise here, before anything is made), then start the
    droplets; their events, until `done`."""
    actor.require(Permission.MANAGE_SERVERS)
    url = droplets.public_url(p.settings)
    do = await droplets.client(p, actor.workspace_id, body.credential)
    snapshot = await _snapshot(p, actor, body.snapshot) if body.snapshot else None
    await asyncio.to_thread(droplets.check_offer, do, body.region, body.size)
    run = Run(p, actor, do, body, url, await agents.secret_for(p, actor.workspace_id),
              snapshot, tuple(await asyncio.to_thread(release.agent_requirements)))
    names = [f"{body.name}-{secrets.token_hex(3)}" for _ in range(body.count)]
    return in_background(lambda emit: _all(run, names, emit))


async def _snapshot(p: Platform, actor: Actor, provider_id: str) -> Snapshot:
    async def tx(s: AsyncSession) -> Snapshot | None:
        return await s.scalar(select(Snapshot).where(
            Snapshot.workspace_id == actor.workspace_id, Snapshot.provider_id == provider_id))

    found = await p.db.read(tx)
    if found is None:
        raise NotFound("snapshot", provider_id)
    return found


def in_background(work: Callable[[Emit], Awaitable[None]]) -> AsyncIterator[ProvisionEvent]:
    """Run `work` in a task of its own (it goes on if the reader leaves); its events."""
    queue: asyncio.Queue[ProvisionEvent | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            await work(queue.put_nowait)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(pump())
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)

    async def read() -> AsyncIterator[ProvisionEvent]:
        while (event := await queue.get()) is not None:
            yield event

    return read()


async def _all(run: Run, names: list[str], emit: Emit) -> None:
    results = await asyncio.gather(*(_one(run, name, emit) for name in names))
    ready = sum(results)
    failed = len(results) - ready
    emit(ProvisionEvent(kind="done", ready=ready, failed=failed,
                        message=f"{ready} server(s) ready, {failed} failed"))


async def _one(run: Run, name: str, emit: Emit) -> bool:
    pair = tls.new_certificate()
    server_id = await _register(run, name, pair.fingerprint)
    emit(ProvisionEvent(kind="creating", server=name, server_id=server_id,
                        message=f"creating droplet {name} in {run.body.region}"))
    droplet_id: list[int] = []
    try:
        await _bring_up(run, name, server_id, pair, droplet_id, emit)
    except Exception as exc:  # every failure ends in a failed server, told
        reason = await _fail(run, name, server_id, droplet_id, exc)
        emit(ProvisionEvent(kind="failed", server=name, server_id=server_id, message=reason))
        return False
    return True


async def _bring_up(run: Run, name: str, server_id: str, pair: tls.CertificatePair,
                    droplet_id: list[int], emit: Emit) -> None:
    created = await _create(run, name, pair)
    droplet_id.append(created.id)
    await _update(run.p, server_id, provider_id=str(created.id))
    emit(ProvisionEvent(kind="created", server=name, server_id=server_id,
                        droplet_id=created.id, message=f"droplet {created.id} created"))
    timeout = run.p.settings.provision_active_seconds
    [active] = await asyncio.to_thread(run.do.wait_active, [created.id], timeout)
    await _update(run.p, server_id, ip=active.ip or "")
    emit(ProvisionEvent(kind="active", server=name, server_id=server_id, ip=active.ip or "",
                        droplet_id=created.id, message=f"active at {active.ip}"))
    seen = await _wait_agent(run, server_id)
    await _update(run.p, server_id, status=seen.status, agent_version=seen.agent_version,
                  status_reason=seen.reason)
    emit(ProvisionEvent(kind="ready", server=name, server_id=server_id, ip=active.ip or "",
                        agent_version=seen.agent_version or "",
                        message=f"ready: agent {seen.agent_version} answers"))


async def _create(run: Run, name: str, pair: tls.CertificatePair) -> Droplet:
    user_data = cloudinit.render_user_data(boot_plan(run, pair))
    body = run.body
    tags = [droplets.workspace_tag(run.actor.workspace_id)]
    made = await asyncio.to_thread(
        run.do.create_droplets, [name], body.region, body.size, run.image, user_data, tags,
        body.vpc, [int(k) if k.isdigit() else k for k in body.ssh_keys])
    return made[0]


async def _wait_agent(run: Run, server_id: str) -> fleet.Observation:
    """The agent's first answer to a signed call, within the ready timeout."""
    settings = run.p.settings
    deadline = time.monotonic() + settings.provision_ready_seconds
    client_of = agents.client_factory({run.actor.workspace_id: run.secret})
    while True:
        server = await _server(run.p, server_id)
        seen = await fleet.observe(server, client_of)
        if seen.status != ServerStatus.UNREACHABLE:
            return seen
        if time.monotonic() > deadline:
            raise ProvisionFailed(f"its agent did not answer within "
                                  f"{settings.provision_ready_seconds:g} s ({seen.reason})")
        await asyncio.sleep(settings.provision_poll_seconds)


async def _fail(run: Run, name: str, server_id: str, droplet_id: list[int],
                exc: Exception) -> str:
    """Destroy the droplet (found by name when its create failed) and mark the server."""
    reason = str(exc) or type(exc).__name__
    ids = droplet_id or await droplets.named(run.do, name)
    problems = [problem for each in ids if (problem := await droplets.destroy_quietly(
        run.do, each))]
    destroyed = "; its droplet was destroyed" if ids and not problems else ""
    reason = "; ".join([f"{reason}{destroyed}", *problems])[:fleet.MAX_REASON]
    await _update(run.p, server_id, status=ServerStatus.FAILED, status_reason=reason)
    return reason


async def _register(run: Run, name: str, fingerprint: str) -> str:
    body = run.body
    server = Server(workspace_id=run.actor.workspace_id, name=name,
                    provider=droplets.PROVIDER, region=body.region, size=body.size,
                    agent_port=install.PROVISIONED_AGENT.port, agent_fingerprint=fingerprint,
                    status=ServerStatus.PROVISIONING, tags=[],
                    cloud_init_version=cloudinit.CLOUD_INIT_VERSION)

    async def tx(s: AsyncSession) -> str:
        s.add(server)
        await s.flush()
        return server.id

    return await run.p.db.write(tx, info=run.actor.audit_info)


async def _update(p: Platform, server_id: str, **values: object) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await s.get_one(Server, server_id)
        for key, value in values.items():
            setattr(row, key, value)

    await p.db.write(tx)


async def _server(p: Platform, server_id: str) -> ServerPublic:
    async def tx(s: AsyncSession) -> ServerPublic:
        return ServerPublic.model_validate(await s.get_one(Server, server_id))

    return await p.db.read(tx)
