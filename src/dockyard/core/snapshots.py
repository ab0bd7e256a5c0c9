"""Dockyard snapshots at DigitalOcean (admins): a build droplet from a stock image installs
the agent and its dependencies (no secret: no key, certificate or environment), reports done
to the control plane with a one-time token, is powered off and snapshotted, and is always
destroyed. Each snapshot's row says which agent version, requirements and cloud-init version
it carries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import release
from dockyard.core import droplets
from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.core.provision import Emit, ProvisionFailed, in_background
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import NotFound
from dockyard.models.base import utcnow
from dockyard.models.provision import ProvisionEvent, SnapshotCreate, SnapshotPublic
from dockyard.models.tables import Snapshot, SnapshotBuild
from dockyard.providers import cloudinit
from dockyard.providers.digitalocean import DigitalOcean
from dockyard.providers.digitalocean import Snapshot as MadeSnapshot

DONE_PATH = "/api/v1/infra/snapshots/builds/{token}/done"


@dataclass(frozen=True)
class Build:
    p: Platform
    actor: Actor
    do: DigitalOcean
    body: SnapshotCreate
    plan: cloudinit.BootPlan
    build_id: str
    name: str


def _hashed(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_snapshot(p: Platform, actor: Actor, body: SnapshotCreate
                          ) -> AsyncIterator[ProvisionEvent]:
    """Check the request (refusals raise here), then build; its events until `done`."""
    actor.require(Permission.MANAGE_SERVERS)
    url = droplets.public_url(p.settings)
    do = await droplets.client(p, actor.workspace_id, body.credential)
    await asyncio.to_thread(droplets.check_offer, do, body.region, body.size)
    token = secrets.token_urlsafe(32)
    bundle = release.current_bundle()
    plan = cloudinit.BootPlan(
        url, bundle.version, bundle.sha256, tuple(release.agent_requirements()),
        build_done_url=url.rstrip("/") + DONE_PATH.format(token=token))
    build = Build(p, actor, do, body, plan, await _new_build(p, actor, token),
                  f"dockyard-{secrets.token_hex(3)}")
    return in_background(lambda emit: _build(build, emit))


async def _new_build(p: Platform, actor: Actor, token: str) -> str:
    expires = utcnow() + timedelta(seconds=p.settings.snapshot_build_seconds * 2)
    row = SnapshotBuild(workspace_id=actor.workspace_id, token_hash=_hashed(token),
                        expires_at=expires)

    async def tx(s: AsyncSession) -> str:
        s.add(row)
        await s.flush()
        return row.id

    return await p.db.write(tx, info=actor.audit_info)


async def build_done(p: Platform, token: str) -> None:
    """A build droplet reports done: once, before its token expires."""
    async def tx(s: AsyncSession) -> None:
        row = await s.scalar(select(SnapshotBuild).where(
            SnapshotBuild.token_hash == _hashed(token)))
        if row is None or row.done_at is not None or row.expires_at <= utcnow():
            raise NotFound("snapshot build", "this token")
        row.done_at = utcnow()

    await p.db.write(tx)


async def _build(build: Build, emit: Emit) -> None:
    made: list[int] = []
    try:
        await _make(build, made, emit)
    except Exception as exc:  # every failure is told, the droplet destroyed
        emit(ProvisionEvent(kind="failed", server=build.name,
                            message=f"the snapshot build failed: {exc}"))
    finally:
        await _destroy(build, made, emit)


async def _make(build: Build, made: list[int], emit: Emit) -> None:
    do, body, settings = build.do, build.body, build.p.settings
    emit(ProvisionEvent(kind="creating", server=build.name,
                        message=f"creating build droplet {build.name} in {body.region}"))
    user_data = cloudinit.render_user_data(build.plan)
    image = body.image or settings.digitalocean_image
    [droplet] = await asyncio.to_thread(
        do.create_droplets, [build.name], body.region, body.size, image, user_data,
        [droplets.workspace_tag(build.actor.workspace_id)])
    made.append(droplet.id)
    emit(ProvisionEvent(kind="created", server=build.name, droplet_id=droplet.id,
                        message=f"droplet {droplet.id} created"))
    await asyncio.to_thread(do.wait_active, [droplet.id], settings.provision_active_seconds)
    emit(ProvisionEvent(kind="active", server=build.name, droplet_id=droplet.id,
                        message="active; installing the agent"))
    await _wait_done(build)
    emit(ProvisionEvent(kind="built", server=build.name, message="the agent is installed"))
    emit(ProvisionEvent(kind="snapshotting", server=build.name,
                        message="powering off and taking the snapshot"))
    taken = await asyncio.to_thread(do.snapshot, droplet.id, build.name,
                                    settings.snapshot_build_seconds)
    row = await _record(build, taken)
    emit(ProvisionEvent(kind="snapshot", server=build.name, snapshot_id=row.provider_id,
                        agent_version=row.agent_version,
                        message=f"snapshot {row.provider_id} carries agent {row.agent_version}"))


async def _wait_done(build: Build) -> None:
    settings = build.p.settings
    deadline = time.monotonic() + settings.snapshot_build_seconds

    async def tx(s: AsyncSession) -> bool:
        return (await s.get_one(SnapshotBuild, build.build_id)).done_at is not None

    while not await build.p.db.read(tx):
        if time.monotonic() > deadline:
            raise ProvisionFailed(f"the build droplet did not report done within "
                                  f"{settings.snapshot_build_seconds:g} s")
        await asyncio.sleep(settings.provision_poll_seconds)


async def _record(build: Build, taken: MadeSnapshot) -> SnapshotPublic:
    row = Snapshot(workspace_id=build.actor.workspace_id, provider_id=taken.id,
                   name=taken.name, regions=list(taken.regions),
                   agent_version=build.plan.bundle_version,
                   requirements_digest=cloudinit.requirements_digest(build.plan.requirements),
                   cloud_init_version=cloudinit.CLOUD_INIT_VERSION)

    async def tx(s: AsyncSession) -> SnapshotPublic:
        s.add(row)
        await s.flush()
        return _public(row)

    return await build.p.db.write(tx, info=build.actor.audit_info)


async def _destroy(build: Build, made: list[int], emit: Emit) -> None:
    ids = made or await droplets.named(build.do, build.name)
    for droplet_id in ids:
        problem = await droplets.destroy_quietly(build.do, droplet_id)
        emit(ProvisionEvent(kind="failed" if problem else "destroyed", server=build.name,
                            droplet_id=droplet_id,
                            message=problem or f"build droplet {droplet_id} destroyed"))
    emit(ProvisionEvent(kind="done", message="snapshot build finished"))


def _public(row: Snapshot) -> SnapshotPublic:
    public = SnapshotPublic.model_validate(row)
    return public.model_copy(update={"current": row.agent_version == release.code_version()})


async def list_snapshots(p: Platform, actor: Actor) -> list[SnapshotPublic]:
    async def tx(s: AsyncSession) -> list[SnapshotPublic]:
        actor.require(Permission.READ)
        rows = await s.scalars(select(Snapshot).where(
            Snapshot.workspace_id == actor.workspace_id).order_by(Snapshot.created_at.desc()))
        return [_public(row) for row in rows]

    return await p.db.read(tx)


async def _row(s: AsyncSession, actor: Actor, ref: str) -> Snapshot:
    column = Snapshot.provider_id if ref.isdigit() else Snapshot.id
    row = await s.scalar(select(Snapshot).where(Snapshot.workspace_id == actor.workspace_id,
                                                column == ref))
    if row is None:
        raise NotFound("snapshot", ref)
    return row


async def delete_snapshot(p: Platform, actor: Actor, ref: str, credential: str) -> None:
    """Delete the snapshot at DigitalOcean (gone already is fine), then its row."""
    actor.require(Permission.MANAGE_SERVERS)
    provider_id = (await p.db.read(lambda s: _row(s, actor, ref))).provider_id
    do = await droplets.client(p, actor.workspace_id, credential)
    with contextlib.suppress(NotFound):
        await asyncio.to_thread(do.delete_snapshot, provider_id)

    async def tx(s: AsyncSession) -> None:
        await delete_recorded(s, await _row(s, actor, ref))

    await p.db.write(tx, info=actor.audit_info)
