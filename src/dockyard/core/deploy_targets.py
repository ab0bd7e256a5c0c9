"""Where a deployment goes and with which parameters; saved deploy configs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.deploy import plan
from dockyard.kernel.errors import InvalidInput, NotFound
from dockyard.models.deploys import (
    DeployConfigCreate,
    DeployConfigPublic,
    DeployParams,
    DeployTarget,
    Effective,
)
from dockyard.models.enums import DEPLOYABLE_SERVER_STATUSES
from dockyard.models.tables import DeployConfig, Domain, Placement, Project, Server, Service


async def target_servers(s: AsyncSession, actor: Actor, service: Service,
                         requested: list[str] | None) -> list[Server]:
    """The named servers; else where the service runs; else every active server."""
    query = select(Server).where(Server.workspace_id == actor.workspace_id)
    if requested:
        found = list(await s.scalars(query.where(
            or_(Server.id.in_(requested), Server.name.in_(requested)))))
        missing = set(requested) - {x.id for x in found} - {x.name for x in found}
        if missing:
            raise NotFound("server", ", ".join(sorted(missing)))
    else:
        placed = select(Placement.server_id).where(Placement.service_id == service.id)
        found = list(await s.scalars(query.where(Server.id.in_(placed)))) or list(
            await s.scalars(query.where(Server.status.in_(DEPLOYABLE_SERVER_STATUSES))))
    return _usable(sorted(found, key=lambda x: x.name))


def _usable(servers: list[Server]) -> list[Server]:
    if not servers:
        raise InvalidInput("there is no active server to deploy to; add one with "
                           "`dockyard servers add` or run `dockyard up --local-node` as root")
    down = [x.name for x in servers if x.status not in DEPLOYABLE_SERVER_STATUSES]
    if down:
        raise InvalidInput(f"server(s) {', '.join(down)} are not active; check them with "
                           "`dockyard servers check` or choose others with --server")
    return servers


async def effective_params(p: Platform, s: AsyncSession, actor: Actor, service: Service,
                           target: DeployTarget) -> Effective:
    """Defaults, then the service's config, then a saved config, then the request."""
    layers: list[dict[str, Any]] = [
        {"keep_releases": p.settings.keep_releases},
        {k: v for k, v in service.config.items() if k in ("port", "health_path", "scale")},
    ]
    if target.config_name:
        layers.append(await _saved_params(s, actor, target.config_name, service))
    if target.params:
        layers.append(target.params.model_dump(exclude_none=True))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return Effective.model_validate(merged)


async def _saved_params(s: AsyncSession, actor: Actor, name: str, service: Service
                        ) -> dict[str, Any]:
    """A saved config's parameters; one saved for a service applies to that service only."""
    saved = await s.scalar(select(DeployConfig).where(
        DeployConfig.workspace_id == actor.workspace_id, DeployConfig.name == name))
    if saved is None:
        raise NotFound("deploy config", name)
    if saved.service_id is not None and saved.service_id != service.id:
        public = await _config_public(s, saved)
        raise InvalidInput(f"deploy config {name!r} is saved for service {public.project}/"
                           f"{public.service}, not {await _path_of(s, service)}; use a config "
                           "saved for this service or for any service (saved without one)")
    return {k: v for k, v in saved.params.items() if v is not None}


async def _path_of(s: AsyncSession, service: Service) -> str:
    return f"{(await s.get_one(Project, service.project_id)).name}/{service.name}"


def preview_host(number: int, service: str, project: str, apps_domain: str) -> str:
    """A preview environment's own name: `pr-N.` before its main service's default host."""
    return f"pr-{number}.{plan.default_host(project, service, apps_domain)}"


async def hosts_of(p: Platform, s: AsyncSession, service: Service, project: str) -> list[str]:
    default = plan.default_host(project, service.name, p.settings.apps_domain)
    if service.preview_of is not None and service.preview_number is not None:
        main = await s.get_one(Service, service.preview_of)
        default = preview_host(service.preview_number, main.name, project,
                               p.settings.apps_domain)
    domains = await s.scalars(select(Domain.hostname).where(Domain.service_id == service.id))
    return [default, *sorted(domains)]


async def list_configs(p: Platform, actor: Actor) -> list[DeployConfigPublic]:
    async def tx(s: AsyncSession) -> list[DeployConfigPublic]:
        actor.require(Permission.READ)
        query = (select(DeployConfig).where(DeployConfig.workspace_id == actor.workspace_id)
                 .order_by(DeployConfig.name))
        return [await _config_public(s, row) for row in await s.scalars(query)]

    return await p.db.read(tx)


async def save_config(p: Platform, actor: Actor, body: DeployConfigCreate) -> DeployConfigPublic:
    """Create or replace the named config (its service is optional)."""

    async def tx(s: AsyncSession) -> DeployConfigPublic:
        actor.require(Permission.WRITE)
        ref = body.service
        service = await service_named(s, actor, ref.project, ref.service) if ref else None
        row = await s.scalar(select(DeployConfig).where(
            DeployConfig.workspace_id == actor.workspace_id, DeployConfig.name == body.name))
        row = row or DeployConfig(workspace_id=actor.workspace_id, name=body.name)
        row.service_id = service.id if service else None
        row.params = body.params.model_dump(mode="json", exclude_none=True)
        s.add(row)
        await s.flush()
        return await _config_public(s, row)

    return await p.db.write(tx, info=actor.audit_info)


async def _config_public(s: AsyncSession, row: DeployConfig) -> DeployConfigPublic:
    project = service = None
    if row.service_id:
        found = await s.get_one(Service, row.service_id)
        service, project = found.name, (await s.get_one(Project, found.project_id)).name
    return DeployConfigPublic(id=row.id, name=row.name, project=project, service=service,
                              params=DeployParams.model_validate(row.params).model_dump(
                                  exclude_none=True),
                              created_at=row.created_at, updated_at=row.updated_at)
