"""History rows for every change, captured at flush time so no code path can forget them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from dockyard.models.base import Base, column_values
from dockyard.models.enums import AuditAction
from dockyard.models.tables import AuditEvent

HIDDEN = "<hidden>"
ACTOR_KEYS = ("actor_user_id", "actor_token_id", "request_id")
# Session info of a transaction whose changes leave no history rows, for what the system
# writes by itself that no person did: the deploy engine's own bookkeeping (phase, progress),
# whose outcome is recorded once with `record_outcome`; health and drift observations;
# leases' heartbeats and the steps of a backup (its start and outcome are recorded).
_UNAUDITED_KEY = "dockyard_unaudited"
UNAUDITED: dict[str, Any] = {_UNAUDITED_KEY: True}


class AuditedSession(Session):
    """The session class of every Dockyard transaction."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def snapshot(obj: Base, values: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values, hidden columns replaced by a marker."""
    hidden = obj.__audit_hidden__
    return {k: HIDDEN if k in hidden else _plain(v) for k, v in values.items()}


def _values_before(obj: Base) -> dict[str, Any]:
    state = inspect(obj)
    before = {}
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        before[attr.key] = history.deleted[0] if history.deleted else getattr(obj, attr.key)
    return before


def _workspace_of(obj: Base) -> str | None:
    if obj.__tablename__ == "workspaces":
        return str(obj.id)  # type: ignore[attr-defined]
    return getattr(obj, "workspace_id", None)


def _row(session: Session, obj: Base, action: AuditAction) -> dict[str, Any]:
    before = None if action is AuditAction.CREATE else snapshot(obj, _values_before(obj))
    after = None if action is AuditAction.DELETE else snapshot(obj, column_values(obj))
    actor = {key: session.info.get(key) for key in ACTOR_KEYS}
    return {
        **actor,
        "workspace_id": _workspace_of(obj),
        "action": action,
        "entity_type": obj.__tablename__,
        "entity_id": str(obj.id),  # type: ignore[attr-defined]
        "before": before,
        "after": after,
    }


def _changed(session: Session) -> list[tuple[Base, AuditAction]]:
    found = [(o, AuditAction.CREATE) for o in session.new]
    found += [(o, AuditAction.UPDATE) for o in session.dirty if session.is_modified(o)]
    found += [(o, AuditAction.DELETE) for o in session.deleted]
    return [(o, a) for o, a in found if isinstance(o, Base) and o.__audited__]


@event.listens_for(AuditedSession, "after_flush")
def _record_changes(session: Session, _flush: UOWTransaction) -> None:
    if session.info.get(_UNAUDITED_KEY):
        return
    rows = [_row(session, obj, action) for obj, action in _changed(session)]
    if rows:
        session.connection().execute(insert(AuditEvent), rows)


async def record_outcome(session: AsyncSession, obj: Base, before: dict[str, Any],
                         after: dict[str, Any], actor: dict[str, Any]) -> None:
    """One `update` history row of `obj` with only the values given, by `actor` (the
    ACTOR_KEYS of whoever started what ended), for a change made in an UNAUDITED session."""
    await session.execute(insert(AuditEvent).values(
        **{key: actor.get(key) for key in ACTOR_KEYS}, workspace_id=_workspace_of(obj),
        action=AuditAction.UPDATE, entity_type=obj.__tablename__,
        entity_id=str(obj.id), before=snapshot(obj, before),  # type: ignore[attr-defined]
        after=snapshot(obj, after)))


async def creator(session: AsyncSession, obj: Base) -> dict[str, Any]:
    """The ACTOR_KEYS of the history row that recorded the creation of `obj` ({} if none)."""
    entity_id = str(obj.id)  # type: ignore[attr-defined]
    query = (select(*(getattr(AuditEvent, key) for key in ACTOR_KEYS))
             .where(AuditEvent.entity_type == obj.__tablename__,
                    AuditEvent.entity_id == entity_id,
                    AuditEvent.action == AuditAction.CREATE).limit(1))
    row = (await session.execute(query)).first()
    return dict(zip(ACTOR_KEYS, row, strict=True)) if row else {}


def _cascading_children(obj: Base) -> list[tuple[type[Base], Any]]:
    """(class, fk column) of audited tables whose rows the database deletes with `obj`."""
    found = []
    for mapper in Base.registry.mappers:
        cls = mapper.class_
        for fk in mapper.local_table.foreign_keys:
            if fk.column.table is obj.__table__ and fk.ondelete == "CASCADE" and cls.__audited__:
                found.append((cls, fk.parent))
    return found


async def delete_recorded(session: AsyncSession, obj: Base) -> None:
    """Delete `obj` and, first, every audited row that would cascade with it, so each
    deletion leaves a history row instead of vanishing inside the database."""
    for cls, column in _cascading_children(obj):
        for child in (await session.scalars(select(cls).where(column == obj.id))).all():  # type: ignore[attr-defined]
            await delete_recorded(session, child)
    await session.delete(obj)
    await session.flush()
