"""A service's auto-scaling policy as people set, read and remove it, and its decisions."""

from __future__ import annotations

from sqlalchemy import desc, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.kernel.errors import InvalidInput, NotFound
from dockyard.models.autoscale import AutoscalePublic, AutoscaleSet, DecisionPublic
from dockyard.models.autoscale_tables import AutoscaleDecision, AutoscalePolicy
from dockyard.models.enums import ServiceKind
from dockyard.models.tables import Service, User


async def set_policy(p: Platform, actor: Actor, project: str, service: str, body: AutoscaleSet
                     ) -> AutoscalePublic:
    """Create or replace the policy; the autoscaler will act as `actor`."""

    async def tx(s: AsyncSession) -> AutoscalePublic:
        found = await _scalable(s, actor, project, service)
        row = await _policy_of(s, found) or AutoscalePolicy(
            workspace_id=actor.workspace_id, service_id=found.id)
        row.user_id, row.min_replicas, row.max_replicas = actor.user_id, body.min, body.max
        row.target_rps, row.target_cpu = body.target_rps, body.target_cpu
        row.cooldown_seconds, row.enabled = body.cooldown_seconds, body.enabled
        s.add(row)
        await s.flush()
        return await _public(s, project, service, row)

    return await p.db.write(tx, info=actor.audit_info)


async def get_policy(p: Platform, actor: Actor, project: str, service: str) -> AutoscalePublic:
    async def tx(s: AsyncSession) -> AutoscalePublic:
        found = await service_named(s, actor, project, service)
        return await _public(s, project, service, await _required(s, found, project, service))

    return await p.db.read(tx)


async def delete_policy(p: Platform, actor: Actor, project: str, service: str) -> None:
    """Stop auto-scaling the service; its replicas stay as they are, its decisions are kept."""

    async def tx(s: AsyncSession) -> None:
        found = await service_named(s, actor, project, service)
        actor.require(Permission.WRITE)
        await s.delete(await _required(s, found, project, service))

    await p.db.write(tx, info=actor.audit_info)


async def decisions(p: Platform, actor: Actor, project: str, service: str, limit: int
                    ) -> list[DecisionPublic]:
    """The latest decisions, newest first."""

    async def tx(s: AsyncSession) -> list[DecisionPublic]:
        found = await service_named(s, actor, project, service)
        rows = await s.scalars(select(AutoscaleDecision).where(
            AutoscaleDecision.service_id == found.id).order_by(desc(AutoscaleDecision.id))
            .limit(limit))
        return [DecisionPublic(at=r.created_at, from_replicas=r.from_replicas,
                               to_replicas=r.to_replicas, reason=r.reason, outcome=r.outcome,
                               deployment_id=r.deployment_id) for r in rows]

    return await p.db.read(tx)


async def _scalable(s: AsyncSession, actor: Actor, project: str, service: str) -> Service:
    found = await service_named(s, actor, project, service)
    actor.require(Permission.WRITE)
    if found.kind is not ServiceKind.APP:
        raise InvalidInput(f"{project}/{service} is a {found.kind.value} service; only the "
                           "web processes of app services are auto-scaled")
    return found


async def _policy_of(s: AsyncSession, service: Service) -> AutoscalePolicy | None:
    return await s.scalar(select(AutoscalePolicy).where(AutoscalePolicy.service_id == service.id))


async def _required(s: AsyncSession, service: Service, project: str, name: str
                    ) -> AutoscalePolicy:
    row = await _policy_of(s, service)
    if row is None:
        raise NotFound("autoscale policy of service", f"{project}/{name}")
    return row


async def _public(s: AsyncSession, project: str, service: str, row: AutoscalePolicy
                  ) -> AutoscalePublic:
    owner = await s.get(User, row.user_id) if row.user_id else None
    return AutoscalePublic(
        project=project, service=service, min=row.min_replicas, max=row.max_replicas,
        target_rps=row.target_rps, target_cpu=row.target_cpu,
        cooldown_seconds=row.cooldown_seconds, enabled=row.enabled,
        set_by=owner.email if owner else None, last_scaled_at=row.last_scaled_at)
