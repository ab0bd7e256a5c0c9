"""Bounds of what the database keeps per request or per event: each kind of row is kept for
so many days and up to so many rows (settings), and the worker's hourly `retention.prune`
job deletes the rest, oldest first, in small batches that are each their own transaction,
so SQLite's write lock is never held for long. Deployment rows themselves are never pruned
(they are the release history), nor the events of running deployments and of the releases
each service can still roll back to, nor a webhook delivery still queued. Container logs and
app metrics have their own pruning (core/logcollect.py, core/app_metrics_store.py)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from dockyard.core import logcollect
from dockyard.core.batches import Pruned, delete_in_batches
from dockyard.core.platform import Platform
from dockyard.kernel.db import Database
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.kernel.queue.outbox import DEAD, FINISHED
from dockyard.kernel.settings import Settings
from dockyard.models.alert_tables import Alert, AlertDelivery
from dockyard.models.autoscale_tables import AutoscaleDecision
from dockyard.models.base import Base, utcnow
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.enums import ACTIVE_STATUSES, DeploymentStatus
from dockyard.models.queue import OutboxEvent, RequestMetric
from dockyard.models.tables import (
    AuditEvent,
    Deployment,
    DeploymentEvent,
    HookDelivery,
    ServerEvent,
    UserSession,
)

log = logging.getLogger("dockyard.retention")
PRUNE_TASK = "retention.prune"
Column = InstrumentedAttribute[Any]
EVERY_ROW = true()
QUEUED = "queued"  # a webhook delivery waiting for its service's deployment to end
RESOLVED = "resolved"


@dataclass(frozen=True)
class Bound:
    """Rows of `table` (those `scope` selects) older than `days` by `time`, or beyond the
    newest `rows` by `order` (None: no count bound), are pruned."""

    name: str
    table: type[Base]
    time: Column
    order: Column
    days: float
    rows: int | None
    scope: ColumnElement[bool] = EVERY_ROW


def bounds(settings: Settings, kept_deployments: Collection[str]) -> list[Bound]:
    """Every bound, the events of `kept_deployments` out of reach."""
    s, other = settings, (settings.other_events_days, settings.other_events_max_rows)
    alerts = (s.alert_deliveries_days, s.alert_deliveries_max_rows)
    return [
        Bound("deployment events", DeploymentEvent, DeploymentEvent.created_at,
              DeploymentEvent.id, s.deployment_events_days, s.deployment_events_max_rows,
              DeploymentEvent.deployment_id.not_in(kept_deployments)),
        Bound("audit", AuditEvent, AuditEvent.created_at, AuditEvent.id, s.audit_days,
              s.audit_max_rows),
        Bound("request metrics", RequestMetric, RequestMetric.created_at, RequestMetric.id,
              s.request_metrics_days, s.request_metrics_max_rows),
        Bound("server events", ServerEvent, ServerEvent.time, ServerEvent.id, *other),
        Bound("autoscale decisions", AutoscaleDecision, AutoscaleDecision.created_at,
              AutoscaleDecision.id, *other),
        Bound("webhook deliveries", HookDelivery, HookDelivery.created_at,
              HookDelivery.created_at, *other, HookDelivery.outcome != QUEUED),
        Bound("alert deliveries", AlertDelivery, AlertDelivery.created_at,
              AlertDelivery.created_at, *alerts),
        Bound("resolved alerts", Alert, Alert.resolved_at, Alert.resolved_at, *alerts,
              Alert.state == RESOLVED),
        Bound("finished jobs", OutboxEvent, OutboxEvent.finished_at, OutboxEvent.id,
              s.finished_jobs_days, s.finished_jobs_max_rows, OutboxEvent.status.in_(FINISHED)),
        Bound("dead jobs", OutboxEvent, OutboxEvent.finished_at, OutboxEvent.id,
              s.dead_jobs_days, s.dead_jobs_max_rows, OutboxEvent.status == DEAD),
        Bound("expired sessions", UserSession, UserSession.expires_at, UserSession.expires_at,
              s.expired_sessions_days, None),
    ]


async def prune(p: Platform, now: datetime | None = None) -> dict[str, Pruned]:
    """Apply every bound; what each pruned, by name."""
    kept = await p.db.read(lambda s: kept_deployments(s, p.settings))
    done = {}
    for bound in bounds(p.settings, kept):
        try:  # one table's failure (a lock held too long) leaves the others to be pruned
            done[bound.name] = await prune_bound(p.db, bound, p.settings.retention_batch, now)
        except Exception:
            log.exception("retention: %s not pruned this time", bound.name)
            continue
        if done[bound.name].rows:
            log.info("retention: %d %s rows pruned", done[bound.name].rows, bound.name)
    return done


async def kept_deployments(s: AsyncSession, settings: Settings) -> set[str]:
    """Running deployments, and the newest `keep_releases` releases of each service (the
    live one's setting): those a rollback can still go to."""
    kept = set(await s.scalars(select(Deployment.id).where(
        Deployment.status.in_(ACTIVE_STATUSES))))
    query = (select(Deployment.id, Deployment.service_id)
             .where(Deployment.status == DeploymentStatus.SUCCEEDED)
             .order_by(Deployment.finished_at.desc()))
    releases: dict[str, list[str]] = {}
    for deployment_id, service_id in await s.execute(query):
        releases.setdefault(service_id, []).append(deployment_id)
    for ids in releases.values():
        live = DeploymentPlan.from_row(await s.get_one(Deployment, ids[0]))
        kept.update(ids[:live.params.keep_releases])
    return kept


async def prune_bound(db: Database, bound: Bound, batch: int, now: datetime | None = None
                      ) -> Pruned:
    """Delete what `bound` does not keep, `batch` rows per transaction."""
    where = await db.read(lambda s: _prunable(s, bound, now or utcnow()))
    return await delete_in_batches(db, bound.table, where, bound.order, batch)


async def _prunable(s: AsyncSession, bound: Bound, now: datetime) -> ColumnElement[bool]:
    """Which rows go: too old, or older than the newest `rows` (as the table is now)."""
    too_old = bound.time < now - timedelta(days=bound.days)
    if bound.rows is None:
        return and_(bound.scope, too_old)
    query = (select(bound.order).where(bound.scope).order_by(bound.order.desc())
             .offset(bound.rows).limit(1))
    newest_dropped = await s.scalar(query)
    beyond = false() if newest_dropped is None else bound.order <= newest_dropped
    return and_(bound.scope, or_(too_old, beyond))


TASKS = Tasks()
TASKS.every(PRUNE_TASK, "41 * * * *", PRUNE_TASK)


@TASKS.task(PRUNE_TASK, max_attempts=1, coalesce=True)
async def prune_job(context: JobContext, payload: dict[str, Any]) -> None:
    await prune(logcollect._platform(context))
