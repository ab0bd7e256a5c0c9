"""Restoring a backup: by default into a new service, so production is never overwritten by
accident; over the original only when asked, with its name typed again, after a safety
backup of what it holds now."""

from __future__ import annotations

import secrets
import time
from contextlib import AbstractAsyncContextManager
from datetime import date
from pathlib import Path

from dockyard.agent.client import NodeAgentClient
from dockyard.core import backup_engines, backups
from dockyard.core.authz import Actor, Permission
from dockyard.core.backup_store import store_for
from dockyard.core.platform import Platform
from dockyard.core.stateful import Located, create_stateful, locate, stateful_action
from dockyard.deploy import stateful as shape
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import Conflict, InvalidInput, NotFound
from dockyard.models.backup_schemas import BackupRestore, RestorePublic
from dockyard.models.enums import ServiceKind
from dockyard.models.stateful import Backup
from dockyard.models.stateful_schemas import StatefulCreate
from dockyard.models.tables import Project

SUFFIX = "-restored-"
LOADER_SECONDS = 3600


def restored_name(service: str, day: date) -> str:
    """NAME-restored-YYYYMMDD, the name shortened to fit in 63 characters."""
    tail = f"{SUFFIX}{day:%Y%m%d}"
    return f"{service[:63 - len(tail)].rstrip('-')}{tail}"


async def restore_backup(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                         service: str, backup_id: str, body: BackupRestore) -> RestorePublic:
    """Load a good backup into a new service (default) or over `service` (`overwrite`).
    The stored file is read back and checked before anything is created or replaced."""
    actor.require(Permission.DELETE if body.overwrite else Permission.WRITE)
    backup = await _good(p, actor, project, service, backup_id)
    if body.overwrite and body.confirm != service:
        raise InvalidInput(f"overwriting {project}/{service} replaces its data: confirm with "
                           f"its name (--confirm {service})")
    async with _opened(p, backup) as path:
        if body.overwrite:
            return await _overwrite(p, runner, actor, backup, path)
        target = body.into or restored_name(service, date.today())
        located = await _new_service(p, runner, actor, project, service, target, backup)
        await _load(p, runner, actor, located, path, clean=False)
    return RestorePublic(backup=backup.id, service=target, overwritten=False)


async def _good(p: Platform, actor: Actor, project: str, service: str, backup_id: str
                ) -> Backup:
    backup = await p.db.read(lambda s: backups.backup_named(s, actor, project, service,
                                                            backup_id))
    if backup.status != "good":
        raise Conflict(f"backup {backup.id} is {backup.status}; only a good (verified) "
                       "backup can be restored")
    return backup


def _opened(p: Platform, backup: Backup) -> AbstractAsyncContextManager[Path]:
    """The backup's dump in a temporary file, its checksum and seal checked."""
    return backups.opened(store_for(p.settings), backup.location, backup.sha256,
                          backups.sealing_key(p, backup.workspace_id))


async def _overwrite(p: Platform, runner: DeployRunner, actor: Actor, backup: Backup,
                     path: Path) -> RestorePublic:
    project = await p.db.read(lambda s: s.get_one(Project, backup.project_id))
    service = backup.service_name
    safety = await backups.create_backup(p, runner, actor, project.name, service, "safety")
    located = await p.db.read(lambda s: locate(s, actor, project.name, service))
    await _load(p, runner, actor, located, path, clean=True)
    return RestorePublic(backup=backup.id, service=service, overwritten=True,
                         safety_backup=safety.id)


async def _new_service(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                       service: str, target: str, backup: Backup) -> Located:
    """A service of the backup's kind, on the original's server and image if it still
    exists (else placed and imaged as any new one)."""
    try:
        original: Located | None = await p.db.read(
            lambda s: locate(s, actor, project, service))
    except NotFound:  # the original was deleted: its final backup is being restored
        original = None
    body = StatefulCreate(
        name=target, kind=backup.kind.value,
        server=original.server.name if original else None,
        image=original.instance.image if original else None,
        memory_mb=original.instance.memory_mb if original else None)
    await create_stateful(p, runner, actor, project, body)
    return await p.db.read(lambda s: locate(s, actor, project, target))


async def _load(p: Platform, runner: DeployRunner, actor: Actor, located: Located,
                path: Path, *, clean: bool) -> None:
    """The dump in `path` loaded into `located`."""
    instance = located.shape(p.box.decrypt(located.instance.password_ciphertext))
    async with (await runner.connect(located.server) as client,
                backups.uploaded(client, path) as blob):
        if instance.kind is ServiceKind.POSTGRES:
            await backup_engines.load_postgres(client, instance, blob, clean=clean)
        else:
            await _load_redis(p, runner, actor, client, located, blob)


async def _load_redis(p: Platform, runner: DeployRunner, actor: Actor,
                      client: NodeAgentClient, located: Located, blob: str) -> None:
    """Redis reads its data only at start: stopped, loaded on its volume by a loader
    container (removed by a sweep only after LOADER_SECONDS), started again."""
    project, name = located.project, located.service.name
    await stateful_action(p, runner, actor, project, name, "stop")
    loader = located.shape(secrets.token_urlsafe(24))
    spec = backup_engines.scratch_spec(
        loader, f"load{secrets.token_hex(8)}", volume=shape.volume_name(loader.site),
        expires=int(time.time() + LOADER_SECONDS))
    try:
        container = await backup_engines.start_scratch(client, spec)
        await backup_engines.load_redis_volume(client, loader, container, blob)
    finally:
        await client.remove_container(spec.name)
        await stateful_action(p, runner, actor, project, name, "start")
