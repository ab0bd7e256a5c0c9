"""The transactional outbox: events written with the change that caused them. The relay moves
them to Redis; without Redis the table is the queue itself and workers lease rows from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.context import current_request_id
from dockyard.kernel.queue.jobs import DEFAULT_QUEUE, Job
from dockyard.kernel.queue.wakeup import announce
from dockyard.models.base import utcnow
from dockyard.models.queue import OutboxEvent, OutboxStatus

DEFAULT_BROKER = "default"
PENDING = OutboxStatus.PENDING.value
FINISHED = (OutboxStatus.DELIVERED.value, OutboxStatus.DONE.value)
DEAD = OutboxStatus.DEAD.value  # its `finished_at` is when it died


async def add_event(
    session: AsyncSession,
    task: str,
    payload: dict[str, Any] | None = None,
    *,
    queue: str = DEFAULT_QUEUE,
    key: str | None = None,
    idempotency_key: str | None = None,
    delay: float = 0.0,
    broker: str = DEFAULT_BROKER,
) -> str:
    """Record a job inside the caller's transaction: it exists exactly when the change does.
    Returns the job id; a repeated idempotency key adds nothing."""
    request_id = session.info.get("request_id") or current_request_id()
    job = Job(task, payload or {}, queue, key=key, idempotency_key=idempotency_key or "",
              request_id=request_id)
    await store_jobs(session, [job], broker, delay)
    return job.id


def _row(job: Job, broker: str, available_at: datetime) -> dict[str, Any]:
    return {
        "job_id": job.id, "broker": broker, "queue": job.queue, "task": job.task,
        "ordering_key": job.key, "idempotency_key": job.idempotency_key,
        "payload": job.payload, "request_id": job.request_id, "attempt": job.attempt,
        "status": PENDING, "available_at": available_at, "created_at": utcnow(),
    }


async def store_jobs(
    session: AsyncSession, jobs: Sequence[Job], broker: str, delay: float = 0.0
) -> int:
    """Insert jobs, skipping those whose idempotency key is already there. Returns how many
    were new."""
    if not jobs:
        return 0
    available_at = utcnow() + timedelta(seconds=delay)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(OutboxEvent).on_conflict_do_nothing()
    rows = [_row(job, broker, available_at) for job in jobs]
    added = len((await session.execute(statement.returning(OutboxEvent.id), rows)).all())
    if added:
        await announce(session)
    return added


def to_job(row: OutboxEvent) -> Job:
    return Job(
        row.task, row.payload, row.queue, id=row.job_id, key=row.ordering_key,
        idempotency_key=row.idempotency_key, request_id=row.request_id, attempt=row.attempt,
        enqueued_at=row.created_at.timestamp(),
    )


async def oldest_pending(session: AsyncSession, broker: str, limit: int) -> list[OutboxEvent]:
    """The relay's next batch in insertion order, locked so two relays cannot interleave."""
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.broker == broker, OutboxEvent.status == PENDING)
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update()
    )
    return list((await session.scalars(query)).all())


async def mark_delivered(session: AsyncSession, ids: Sequence[int]) -> None:
    values = {"status": OutboxStatus.DELIVERED.value, "finished_at": utcnow()}
    await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(values))


async def has_pending_key(session: AsyncSession, broker: str, key: str) -> bool:
    query = select(OutboxEvent.id).where(
        OutboxEvent.broker == broker, OutboxEvent.ordering_key == key,
        OutboxEvent.status == PENDING,
    )
    return bool(await session.scalar(select(exists(query))))


async def pending_count(session: AsyncSession, broker: str, queue: str | None = None) -> int:
    query = select(func.count()).where(
        OutboxEvent.broker == broker, OutboxEvent.status == PENDING
    )
    if queue is not None:
        query = query.where(OutboxEvent.queue == queue)
    return int(await session.scalar(query) or 0)


async def prune_finished(session: AsyncSession, broker: str, older_than: timedelta) -> int:
    """Forget delivered and done rows older than `older_than`; dead rows stay for a person
    until the `retention.prune` job's bound on them (core/retention.py)."""
    cutoff = utcnow() - older_than
    result = await session.execute(
        delete(OutboxEvent).where(
            OutboxEvent.broker == broker, OutboxEvent.status.in_(FINISHED),
            OutboxEvent.finished_at < cutoff,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def any_pending(session: AsyncSession, broker: str) -> bool:
    """A cheap read first, so an idle relay never takes SQLite's write lock."""
    query = select(OutboxEvent.id).where(
        OutboxEvent.broker == broker, OutboxEvent.status == PENDING
    )
    return bool(await session.scalar(select(exists(query))))
