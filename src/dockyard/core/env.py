"""Environment variables of a service, encrypted at rest, secrets masked on the way out."""

from __future__ import annotations

import json

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.deployments import by_ref
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.core.stateful import project_links
from dockyard.deploy import injection
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import InvalidInput, NotFound
from dockyard.kernel.security import SecretBox
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.deploys import ReleaseVariable
from dockyard.models.enums import ServiceKind
from dockyard.models.fields import MASK
from dockyard.models.schemas import EnvPatch, EnvVarItem, EnvVarPublic
from dockyard.models.stateful import StatefulLink
from dockyard.models.tables import Deployment, EnvVar, Service


def _public(box: SecretBox, row: EnvVar) -> EnvVarPublic:
    value = MASK if row.is_secret else box.decrypt(row.value_ciphertext)
    return EnvVarPublic(key=row.key, value=value, secret=row.is_secret, updated_at=row.updated_at)


def _check_sizes(p: Platform, items: list[EnvVarItem]) -> None:
    limit = p.settings.env_value_max_bytes
    for item in items:
        if len(item.value.encode()) > limit:
            raise InvalidInput(f"the value of {item.key} is larger than {limit} bytes")


async def _rows(s: AsyncSession, service: Service) -> dict[str, EnvVar]:
    query = select(EnvVar).where(EnvVar.service_id == service.id)
    return {row.key: row for row in await s.scalars(query)}


async def list_env(p: Platform, actor: Actor, project: str, service: str,
                   show_secret: bool = False) -> list[EnvVarPublic]:
    """The service's variables and, for an app, the URLs its project's stateful services
    inject, their passwords masked unless an admin asks (`show_secret`)."""
    if show_secret:
        actor.require(Permission.READ_SECRETS)

    async def tx(s: AsyncSession) -> list[EnvVarPublic]:
        actor.require(Permission.READ)
        found = await service_named(s, actor, project, service)
        return _listing(p.box, await _rows(s, found), await _links(p, s, found), show_secret)

    return await p.db.read(tx)


async def _links(p: Platform, s: AsyncSession, service: Service) -> list[StatefulLink]:
    """What the project's stateful services give an app (nothing to another service)."""
    if service.kind is not ServiceKind.APP:
        return []
    return await project_links(p, s, service.project_id)


def _listing(box: SecretBox, rows: dict[str, EnvVar], links: list[StatefulLink],
             show_secret: bool) -> list[EnvVarPublic]:
    """The user's variables (naming the service whose URL one replaces) and the injected."""
    urls = {link.service: link.url for link in links}
    shown = {key: _public(box, row) for key, row in rows.items()}
    for link in injection.injected_env(links, dict.fromkeys(rows, "")).links:
        if link.given_by == injection.YOU:
            shown[link.variable] = shown[link.variable].model_copy(
                update={"stateful_service": link.service})
        elif link.injected:
            url = urls[link.service]
            shown[link.variable] = EnvVarPublic(
                key=link.variable, value=url if show_secret else injection.masked_url(url),
                secret=True, updated_at=None, source="injected", stateful_service=link.service)
    return [shown[key] for key in sorted(shown)]


def _apply_set(p: Platform, service: Service, rows: dict[str, EnvVar], item: EnvVarItem) -> EnvVar:
    row = rows.get(item.key) or EnvVar(
        workspace_id=service.workspace_id, service_id=service.id, key=item.key
    )
    row.value_ciphertext = p.box.encrypt(item.value)
    row.is_secret = item.secret
    return row


async def patch_env(
    p: Platform, actor: Actor, project: str, service: str, body: EnvPatch
) -> list[EnvVarPublic]:
    """Set and unset several variables in one transaction: all of it happens, or none."""
    _check_sizes(p, body.set)
    both = {i.key for i in body.set} & set(body.unset)
    if both:
        raise InvalidInput(f"cannot both set and unset {', '.join(sorted(both))}")

    async def tx(s: AsyncSession) -> list[EnvVarPublic]:
        target = await service_named(s, actor, project, service)
        actor.require(Permission.WRITE)
        rows = await _rows(s, target)
        for item in body.set:
            rows[item.key] = _apply_set(p, target, rows, item)
            s.add(rows[item.key])
        for key in body.unset:
            if key in rows:
                await delete_recorded(s, rows.pop(key))
        await s.flush()
        return [_public(p.box, rows[key]) for key in sorted(rows)]

    return await p.db.write(tx, info=actor.audit_info)


_ONE_VAR = select(EnvVar).where(EnvVar.service_id == bindparam("service"),
                                EnvVar.key == bindparam("key"))


async def set_env(
    p: Platform, actor: Actor, project: str, service: str, item: EnvVarItem
) -> EnvVarPublic:
    """Set one variable, touching only its own row."""
    _check_sizes(p, [item])

    async def tx(s: AsyncSession) -> EnvVarPublic:
        target = await service_named(s, actor, project, service)
        actor.require(Permission.WRITE)
        found = await s.scalars(_ONE_VAR, {"service": target.id, "key": item.key})
        row = _apply_set(p, target, {r.key: r for r in found}, item)
        s.add(row)
        await s.flush()
        return _public(p.box, row)

    return await p.db.write(tx, info=actor.audit_info)


async def unset_env(p: Platform, actor: Actor, project: str, service: str, key: str) -> None:
    async def tx(s: AsyncSession) -> None:
        target = await service_named(s, actor, project, service)
        actor.require(Permission.WRITE)
        row = (await _rows(s, target)).get(key)
        if row is None:
            raise NotFound("variable", key)
        await delete_recorded(s, row)

    await p.db.write(tx, info=actor.audit_info)


async def release_env(p: Platform, actor: Actor, ref: str) -> list[ReleaseVariable]:
    """The variables a deployment runs with (what a rollback to it brings back), masked as
    ReleaseVariable.value says."""

    async def tx(s: AsyncSession) -> list[ReleaseVariable]:
        actor.require(Permission.READ)
        row = await by_ref(s, actor, ref)
        today = await _rows(s, await s.get_one(Service, row.service_id))
        return _release_listing(p.box, row, today)

    return await p.db.read(tx)


def _release_listing(box: SecretBox, row: Deployment, today: dict[str, EnvVar]
                     ) -> list[ReleaseVariable]:
    sealed = row.env_ciphertext
    values: dict[str, str] = json.loads(box.decrypt(sealed)) if sealed else {}
    injected = {link.variable for link in DeploymentPlan.from_row(row).links if link.injected}
    return [_release_variable(key, values[key], today.get(key), key in injected)
            for key in sorted(values)]


def _release_variable(key: str, value: str, today: EnvVar | None, injected: bool
                      ) -> ReleaseVariable:
    """Shown only when the service has it today as a variable that is not secret."""
    if injected:
        return ReleaseVariable(key=key, value=injection.masked_url(value), secret=True,
                               source="injected")
    secret = today is None or today.is_secret
    return ReleaseVariable(key=key, value=MASK if secret else value, secret=secret,
                           source="user")


async def resolved_env(p: Platform, service_id: str) -> dict[str, str]:
    """The plain values of a service's variables, for the deploy engine (never for listings)."""

    async def tx(s: AsyncSession) -> dict[str, str]:
        rows = await s.scalars(select(EnvVar).where(EnvVar.service_id == service_id))
        return {row.key: p.box.decrypt(row.value_ciphertext) for row in rows}

    return await p.db.read(tx)
