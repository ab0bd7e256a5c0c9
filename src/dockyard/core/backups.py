"""Backups of stateful services: taken (a dump, sealed and stored), verified in a scratch
container before they count as good, listed, deleted; and the sweep that leaves no backup
of a stopped control plane marked running and no scratch container behind."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.core import backup_engines, fleet, logcollect
from dockyard.core.authz import Actor, Permission
from dockyard.core.backup_checks import Verdict
from dockyard.core.backup_store import (
    BackupCorrupted,
    BackupStore,
    backup_key,
    seal,
    store_for,
    unseal,
)
from dockyard.core.deployments import new_runner
from dockyard.core.lookup import project_named
from dockyard.core.platform import Platform
from dockyard.core.stateful import Located, locate
from dockyard.deploy import stateful as shape
from dockyard.deploy.run import Connect
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.audit import UNAUDITED, delete_recorded
from dockyard.kernel.errors import Conflict, DockyardError, NotFound
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.models.backup_schemas import BackupPublic
from dockyard.models.base import utcnow
from dockyard.models.schemas import ServerPublic
from dockyard.models.stateful import Backup
from dockyard.models.tables import ServerEvent

log = logging.getLogger("dockyard.backups")
LEASE_SECONDS = 120.0  # a running backup whose heartbeat is older is a dead one
HEARTBEAT_SECONDS = 15.0
SWEEP_TASK = "backups.sweep"


class BackupFailed(DockyardError):
    """The backup was taken but is not usable (it is kept, marked failed, with the reason)."""

    status_code = 502


async def create_backup(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                        service: str, trigger: str = "manual") -> BackupPublic:
    """Dump, seal and store the service's data, then verify it in a scratch container; good
    only once verified. A failure marks it failed, raises an alert event and is raised."""
    actor.require(Permission.WRITE)
    located, backup_id = await p.db.write(
        lambda s: _begin(s, actor, project, service, trigger), info=actor.audit_info)
    async with _heartbeat(p, backup_id):
        try:
            await _take(p, runner, located, backup_id)
        except Exception as exc:
            reason = exc.message if isinstance(exc, DockyardError) else str(exc)
            await _fail(p, backup_id, located.server, reason)
            raise BackupFailed(f"backup {backup_id} of {project}/{service} failed: "
                               f"{reason}") from exc
    return await _public(p, backup_id)


async def _begin(s: AsyncSession, actor: Actor, project: str, service: str, trigger: str
                 ) -> tuple[Located, str]:
    located = await locate(s, actor, project, service)
    if located.instance.state == "stopped":
        raise Conflict(f"{project}/{service} is stopped; start it to back it up "
                       f"(dockyard services start {service} -p {project})")
    now = utcnow()
    backup = Backup(workspace_id=actor.workspace_id, project_id=located.service.project_id,
                    service_id=located.service.id, service_name=service,
                    kind=located.service.kind, version=located.instance.version,
                    trigger=trigger, status="running", started_at=now, heartbeat_at=now)
    s.add(backup)
    await s.flush()
    return located, backup.id


@asynccontextmanager
async def _heartbeat(p: Platform, backup_id: str) -> AsyncIterator[None]:
    """Renew the backup's lease while the body runs."""
    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await p.db.write(lambda s: _touch(s, backup_id), info=UNAUDITED)
            except Exception as exc:  # the database may answer again before the lease ends
                log.warning("the lease of backup %s was not renewed: %s", backup_id, exc)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _touch(s: AsyncSession, backup_id: str) -> None:
    backup = await s.get(Backup, backup_id)
    if backup is not None and backup.status == "running":
        backup.heartbeat_at = utcnow()


def object_key(backup: Backup) -> str:
    return f"{backup.workspace_id}/{backup.project_id}/{backup.service_name}/{backup.id}"


def sealing_key(p: Platform, workspace_id: str) -> bytes:
    return backup_key(p.keys.secrets, workspace_id)


async def _take(p: Platform, runner: DeployRunner, located: Located, backup_id: str
                ) -> None:
    backup = await p.db.read(lambda s: s.get_one(Backup, backup_id))
    store, key = store_for(p.settings), object_key(backup)
    box_key = sealing_key(p, backup.workspace_id)
    instance = located.shape(p.box.decrypt(located.instance.password_ciphertext))
    async with await runner.connect(located.server) as client:
        dump = await backup_engines.dump(client, instance)
        try:
            stored = await store.put(key, seal(client.read_blob(dump.blob), box_key))
        finally:
            await client.delete_blob(dump.blob)
        await _stored(p, backup_id, store.kind, key, stored.size_bytes, stored.sha256)
        verdict = await _verify(client, store, key, stored.sha256, box_key, instance,
                                backup_id, dump)
    if not verdict.good:
        raise BackupFailed(f"verification failed: {verdict.text}")
    await _finish(p, backup_id, verdict.text)


async def _verify(client: NodeAgentClient, store: BackupStore, key: str, sealed_sha256: str,
                  box_key: bytes, source: shape.Instance, backup_id: str,
                  dump: backup_engines.Dump) -> Verdict:
    """Read the stored backup back, restore it into a scratch container of the same image
    on the same server, check it; the scratch container goes in any case."""
    scratch = _scratch_instance(source)
    async with fetched(store, key, sealed_sha256, box_key) as (path, plain_sha256):
        if plain_sha256 != dump.sha256:
            raise BackupCorrupted("the stored backup does not read back as the dump taken")
        async with uploaded(client, path) as blob:
            spec = backup_engines.scratch_spec(scratch, backup_id)
            try:
                container = await backup_engines.start_scratch(client, spec)
                return await backup_engines.verify(client, scratch, container, blob, dump.keys)
            finally:
                await client.remove_container(spec.name)


def _scratch_instance(source: shape.Instance) -> shape.Instance:
    return shape.Instance(kind=source.kind, project=source.project, service=source.service,
                          image=source.image, port=source.port,
                          password=secrets.token_urlsafe(24), memory_mb=source.memory_mb)


async def _checked(chunks: AsyncIterator[bytes], digest: Any) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        digest.update(chunk)
        yield chunk


@asynccontextmanager
async def opened(store: BackupStore, key: str, sealed_sha256: str, box_key: bytes
                 ) -> AsyncIterator[Path]:
    """A stored backup's dump in a temporary file, refused if it is not the one recorded."""
    async with fetched(store, key, sealed_sha256, box_key) as (path, _):
        yield path


@asynccontextmanager
async def fetched(store: BackupStore, key: str, sealed_sha256: str, box_key: bytes
                  ) -> AsyncIterator[tuple[Path, str]]:
    """The stored backup opened into a temporary file, with its sha256; refused (and the
    file gone) if the stored bytes are not the ones recorded or do not open."""
    sealed, plain = hashlib.sha256(), hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="dockyard-backup-") as directory:
        path = Path(directory) / "dump"
        try:
            async with await anyio.open_file(path, "wb") as handle:
                async for chunk in unseal(_checked(await store.get(key), sealed), box_key):
                    plain.update(chunk)
                    await handle.write(chunk)
        except DockyardError:
            raise
        except Exception as exc:
            raise BackupCorrupted(f"the stored backup cannot be opened: {exc}") from exc
        if sealed.hexdigest() != sealed_sha256:
            raise BackupCorrupted("the stored backup's checksum is not the one recorded")
        yield path, plain.hexdigest()


@asynccontextmanager
async def uploaded(client: NodeAgentClient, path: Path) -> AsyncIterator[str]:
    """The file as a blob on the server, deleted afterwards."""
    blob = await client.upload_blob(path)
    try:
        yield blob.id
    finally:
        await client.delete_blob(blob.id)


async def _stored(p: Platform, backup_id: str, storage: str, location: str, size: int,
                  sha256: str) -> None:
    async def tx(s: AsyncSession) -> None:
        backup = await s.get_one(Backup, backup_id)
        backup.storage, backup.location = storage, location
        backup.size_bytes, backup.sha256 = size, sha256

    await p.db.write(tx, info=UNAUDITED)  # a step: its start and outcome are the history


async def _finish(p: Platform, backup_id: str, verification: str) -> None:
    async def tx(s: AsyncSession) -> None:
        backup = await s.get_one(Backup, backup_id)
        backup.status, backup.verification, backup.finished_at = "good", verification, utcnow()

    await p.db.write(tx)


async def _fail(p: Platform, backup_id: str, server: ServerPublic, reason: str) -> None:
    """Marked failed, with an alert event on its server."""
    async def tx(s: AsyncSession) -> None:
        backup = await s.get_one(Backup, backup_id)
        backup.status, backup.error, backup.finished_at = "failed", reason, utcnow()
        s.add(ServerEvent(server_id=server.id, kind="backup_failed", message=(
            f"backup {backup_id} of {backup.service_name} failed: {reason}")))

    await p.db.write(tx)


def public(backup: Backup) -> BackupPublic:
    answer = BackupPublic.model_validate(backup)
    if backup.started_at and backup.finished_at:
        answer.duration_seconds = (backup.finished_at - backup.started_at).total_seconds()
    return answer


async def _public(p: Platform, backup_id: str) -> BackupPublic:
    return public(await p.db.read(lambda s: s.get_one(Backup, backup_id)))


async def list_backups(p: Platform, actor: Actor, project: str, service: str
                       ) -> list[BackupPublic]:
    """Newest first; a deleted service's backups still list under its name."""
    async def tx(s: AsyncSession) -> list[BackupPublic]:
        actor.require(Permission.READ)
        parent = await project_named(s, actor, project)
        query = (select(Backup).where(Backup.project_id == parent.id,
                                      Backup.service_name == service)
                 .order_by(Backup.created_at.desc(), Backup.id))
        return [public(b) for b in await s.scalars(query)]

    return await p.db.read(tx)


async def backup_named(s: AsyncSession, actor: Actor, project: str, service: str,
                       backup_id: str) -> Backup:
    """A backup of `project/service` by its id or a unique prefix of it."""
    parent = await project_named(s, actor, project)
    query = select(Backup).where(Backup.project_id == parent.id,
                                 Backup.service_name == service,
                                 Backup.id.startswith(backup_id.lower()))
    found = list(await s.scalars(query.limit(2)))
    if len(found) != 1:
        raise NotFound("backup", f"{backup_id} of {project}/{service}")
    return found[0]


async def delete_backup(p: Platform, actor: Actor, project: str, service: str,
                        backup_id: str) -> None:
    """The stored file first, then the record; a running backup is not deleted."""
    actor.require(Permission.DELETE)
    backup = await p.db.read(lambda s: backup_named(s, actor, project, service, backup_id))
    if backup.status == "running":
        raise Conflict("that backup is still running; delete it once it has finished")
    if backup.location:
        await store_for(p.settings).delete(backup.location)

    async def tx(s: AsyncSession) -> None:
        await delete_recorded(s, await s.get_one(Backup, backup.id))

    await p.db.write(tx, info=actor.audit_info)


async def sweep(p: Platform, connect: Connect, now: datetime | None = None) -> list[str]:
    """Backups whose lease expired are marked failed; scratch containers not of a live
    backup are removed from every server. What it did, in sentences."""
    expired, live = await p.db.write(lambda s: _expire(s, now or utcnow()))
    done = [f"backup {b} marked failed: its control plane stopped" for b in expired]
    await _forget_stored(p, [location for location in expired.values() if location])
    for server in await fleet.pollable_servers(p):
        try:
            done += await _remove_scratch(connect, server, live)
        except (AgentError, httpx.HTTPError) as exc:
            log.warning("scratch containers of %s not swept: %s", server.name, exc)
    return done


async def _forget_stored(p: Platform, locations: list[str]) -> None:
    """What a dead backup stored is deleted (it was never verified)."""
    store = store_for(p.settings)
    for location in locations:
        try:
            await store.delete(location)
        except Exception as exc:  # the next backups matter more than this file
            log.warning("the stored file %s of a dead backup was not deleted: %s",
                        location, exc)


async def _expire(s: AsyncSession, now: datetime) -> tuple[dict[str, str], set[str]]:
    """The expired backups (id: stored location), marked failed, and the live ones."""
    running = list(await s.scalars(select(Backup).where(Backup.status == "running")))
    cutoff = now - timedelta(seconds=LEASE_SECONDS)
    expired = [b for b in running if b.heartbeat_at is None or b.heartbeat_at < cutoff]
    for backup in expired:
        backup.status, backup.finished_at = "failed", now
        backup.error = "the control plane stopped during this backup (its lease expired)"
    return {b.id: b.location for b in expired}, {b.id for b in running} - {b.id for b in expired}


async def _remove_scratch(connect: Connect, server: ServerPublic, live: set[str]
                          ) -> list[str]:
    async with await connect(server) as client:
        found = [c for c in await client.containers()
                 if backup_engines.abandoned(c.labels, live, time.time())]
        for container in found:
            await client.remove_container(container.name)
    return [f"scratch container {c.name} removed from {server.name}" for c in found]


TASKS = Tasks()
TASKS.every(SWEEP_TASK, "* * * * *", SWEEP_TASK)


@TASKS.task(SWEEP_TASK, max_attempts=1, coalesce=True)
async def sweep_job(context: JobContext, payload: dict[str, Any]) -> None:
    p = logcollect._platform(context)
    for sentence in await sweep(p, new_runner(p).connect):
        log.info("%s", sentence)
