"""The audit history: who changed what, when, before and after."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.models.schemas import AuditEventPublic
from dockyard.models.tables import AuditEvent


async def query_history(
    p: Platform, actor: Actor, *, entity_type: str | None = None, entity_id: str | None = None,
    before_id: int | None = None, limit: int = 100,
) -> list[AuditEventPublic]:
    """Newest first; page with `before_id` (the smallest id of the previous page)."""

    async def tx(s: AsyncSession) -> list[AuditEventPublic]:
        actor.require(Permission.READ_AUDIT)
        query = select(AuditEvent).where(AuditEvent.workspace_id == actor.workspace_id)
        if entity_type:
            query = query.where(AuditEvent.entity_type == entity_type)
        if entity_id:
            query = query.where(AuditEvent.entity_id == entity_id)
        if before_id is not None:
            query = query.where(AuditEvent.id < before_id)
        rows = await s.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))
        return [AuditEventPublic.model_validate(r) for r in rows]

    return await p.db.read(tx)
