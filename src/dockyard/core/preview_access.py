"""Read-only access of a preview environment to its project's stateful services: a user of
its own in each (Postgres: a LOGIN role granted pg_read_all_data, read-only by default;
Redis: an ACL user allowed only read commands on every key), created through the agent's
exec in the service's container before each preview deploy and dropped when it closes.

Its name and password are derived from the preview's id and the service's own URL, so
nothing more is stored and a re-keyed service gives previews a new password at their next
deploy. Redis keeps ACL users in memory: a restarted Redis has none until the next deploy."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import backup_engines
from dockyard.core.platform import Platform
from dockyard.core.stateful import Located, password_of
from dockyard.core.stateful_node import on_server
from dockyard.deploy import stateful as shape
from dockyard.deploy.run import Connect
from dockyard.models.enums import ServiceKind
from dockyard.models.schemas import ServerPublic
from dockyard.models.stateful import StatefulInstance, StatefulLink
from dockyard.models.tables import Server, Service


def user_of(preview_id: str) -> str:
    """The preview's user name in every stateful service (hex: safe as an SQL identifier)."""
    return f"preview_{preview_id}"


def password_for(service_url: str, preview_id: str) -> str:
    return hmac.new(service_url.encode(), preview_id.encode(), hashlib.sha256).hexdigest()


def read_only_url(service_url: str, preview_id: str) -> str:
    """The service's URL with the preview's user and password in place of its owner's."""
    parts = urlsplit(service_url)
    host = parts.netloc.rpartition("@")[2]
    credentials = f"{user_of(preview_id)}:{password_for(service_url, preview_id)}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))


def read_only_links(links: Iterable[StatefulLink], preview_id: str) -> list[StatefulLink]:
    return [dataclasses.replace(x, url=read_only_url(x.url, preview_id)) for x in links]


def postgres_grant(owner: str, user: str, password: str) -> list[str]:
    """psql as the service's owner (a superuser): create or re-key the role, read-only."""
    return [*_psql(owner),
            "-c", f"DO $$BEGIN CREATE ROLE \"{user}\"; EXCEPTION WHEN duplicate_object "
                  "THEN NULL; END$$",
            "-c", f"ALTER ROLE \"{user}\" LOGIN PASSWORD '{password}'",
            "-c", f"ALTER ROLE \"{user}\" SET default_transaction_read_only = on",
            "-c", f"GRANT pg_read_all_data TO \"{user}\""]


def postgres_revoke(owner: str, user: str) -> list[str]:
    return [*_psql(owner), "-c", f"DROP ROLE IF EXISTS \"{user}\""]


def _psql(owner: str) -> list[str]:
    return ["psql", "-X", "--no-password", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-U", owner, "-d", owner]


def redis_grant(user: str, password: str) -> list[str]:
    return ["redis-cli", "ACL", "SETUSER", user, "reset", "on", f">{password}", "~*",
            "-@all", "+@read", "+@connection", "-@write", "-@admin"]


def redis_revoke(user: str) -> list[str]:
    return ["redis-cli", "ACL", "DELUSER", user]


async def _stateful_of(s: AsyncSession, project: str, preview_id: str) -> list[Located]:
    preview = await s.get_one(Service, preview_id)
    query = (select(Service, StatefulInstance, Server)
             .join(StatefulInstance, StatefulInstance.service_id == Service.id)
             .join(Server, Server.id == StatefulInstance.server_id)
             .where(Service.project_id == preview.project_id,
                    StatefulInstance.state == "running").order_by(Service.name))
    return [Located(service, instance, project, ServerPublic.model_validate(server))
            for service, instance, server in await s.execute(query)]


async def _is_preview(s: AsyncSession, service_id: str) -> bool:
    return await s.scalar(select(Service.preview_of).where(Service.id == service_id)) is not None


async def grant(p: Platform, connect: Connect, project: str, preview_id: str) -> None:
    """The preview's read-only user in each running stateful service of its project."""
    for located in await p.db.read(lambda s: _stateful_of(s, project, preview_id)):
        await _run(p, connect, located, preview_id, revoke=False)


async def revoke(p: Platform, connect: Connect, project: str, preview_id: str) -> None:
    """Drop the preview's users again (nothing for a service that is not a preview)."""
    if not await p.db.read(lambda s: _is_preview(s, preview_id)):
        return
    for located in await p.db.read(lambda s: _stateful_of(s, project, preview_id)):
        await _run(p, connect, located, preview_id, revoke=True)


async def _run(p: Platform, connect: Connect, located: Located, preview_id: str,
               revoke: bool) -> None:
    password = password_of(p, located)
    instance = located.shape(password)
    user = user_of(preview_id)
    if located.service.kind is ServiceKind.POSTGRES:
        env = {"PGPASSWORD": password}
        argv = (postgres_revoke(instance.user, user) if revoke else postgres_grant(
            instance.user, user, password_for(shape.service_url(instance), preview_id)))
    else:
        env = {"REDISCLI_AUTH": password}
        argv = redis_revoke(user) if revoke else redis_grant(
            user, password_for(shape.service_url(instance), preview_id))
    async with on_server(connect, located.server) as client:
        await backup_engines.output(client, shape.container_name(instance.site), argv, env)
