"""Re-keying a stateful service: a new generated password, set in the engine and kept
(encrypted); the project's apps get the new URL at their next rollout, or at once with
`redeploy`."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import backup_engines
from dockyard.core.authz import Actor, Permission
from dockyard.core.deployments import redeploy_project_apps
from dockyard.core.platform import Platform
from dockyard.core.stateful import (
    Located,
    changing,
    locate,
    password_of,
    server_ips,
    stateful_info,
)
from dockyard.core.stateful_node import on_server, put_on_server, remove_from_server
from dockyard.deploy import stateful as shape
from dockyard.deploy.runner import DeployRunner
from dockyard.models.enums import ServiceKind
from dockyard.models.stateful import StatefulInstance
from dockyard.models.stateful_schemas import StatefulPublic


async def rekey_stateful(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                         name: str, redeploy: bool) -> StatefulPublic:
    """Postgres: the role's password is changed in the database; then the container is
    started again with the new password in its spec (a few seconds; the data stays)."""
    actor.require(Permission.WRITE)
    located = await p.db.read(lambda s: locate(s, actor, project, name))
    new = secrets.token_urlsafe(24)
    async with on_server(runner.connect, located.server) as client:
        if located.service.kind is ServiceKind.POSTGRES:
            await backup_engines.run(client, shape.container_name(located.shape("").site),
                                     _alter_role(located, new),
                                     {"PGPASSWORD": password_of(p, located)})
        await _keep(p, actor, located, new)
        async with changing(p, actor, located, located.instance.state):
            await remove_from_server(client, located.shape(""), keep_rule=True)
            await put_on_server(client, located.shape(new), await server_ips(p, located))
    found = await stateful_info(p, runner, actor, project, name)
    if not redeploy:
        return found
    return found.model_copy(update={
        "redeploys": await redeploy_project_apps(p, runner, actor, project)})


def _alter_role(located: Located, password: str) -> list[str]:
    """psql as the service's user; the password is ours (URL-safe base64: no quote in it)."""
    user = located.instance.username
    return ["psql", "-X", "--no-password", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-U", user, "-d", located.instance.database,
            "-c", f"ALTER ROLE \"{user}\" PASSWORD '{password}'"]


async def _keep(p: Platform, actor: Actor, located: Located, password: str) -> None:
    async def tx(s: AsyncSession) -> None:
        instance = await s.get_one(StatefulInstance, located.service.id)
        instance.password_ciphertext = p.box.encrypt(password)

    await p.db.write(tx, info=actor.audit_info)

