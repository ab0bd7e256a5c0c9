"""The workspace at a glance: every project with its services, each with its live release,
the state its last deployment left it in and its request rate of the last few minutes. Five
queries whatever the number of services: projects, services, each service's last deployment,
each one's live release (both ranked in the database), and the requests of the window."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.app_metrics import COLLECTION_LAG
from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.models.app_metric_tables import AppMetricMinute
from dockyard.models.enums import DeploymentStatus, ServiceKind
from dockyard.models.overview import (
    LiveRelease,
    Overview,
    ProjectOverview,
    ServiceOverview,
    ServiceState,
)
from dockyard.models.tables import Deployment, Project, Service

WINDOW_SECONDS = 300  # the request rate's window: whole minutes reaching back at least this
STATES = {DeploymentStatus.SUCCEEDED: ServiceState.RUNNING,
          DeploymentStatus.FAILED: ServiceState.FAILED,
          DeploymentStatus.CANCELLED: ServiceState.CANCELLED,
          DeploymentStatus.QUEUED: ServiceState.DEPLOYING,
          DeploymentStatus.RUNNING: ServiceState.DEPLOYING}
Rows = Mapping[str, Row[Any]]


async def overview(p: Platform, actor: Actor) -> Overview:
    """The actor's workspace: its projects by name, each with its services by name."""
    now = time.time()
    first = int(now - WINDOW_SECONDS) // 60 * 60
    seconds = max(1.0, now - COLLECTION_LAG - first)

    async def tx(s: AsyncSession) -> Overview:
        actor.require(Permission.READ)
        workspace = actor.workspace_id
        last = await _newest(s, workspace, Deployment.created_at)
        live = await _newest(s, workspace, Deployment.finished_at,
                             Deployment.status == DeploymentStatus.SUCCEEDED,
                             Deployment.finished_at.is_not(None))
        rates = {k: v / seconds for k, v in (await _requests(s, workspace, first)).items()}
        services = [_service(row, last, live, rates) for row in await _services(s, workspace)]
        projects = await _projects(s, workspace, services)
        return Overview(projects=projects, rate_window_seconds=int(now - first))

    return await p.db.read(tx)


async def _projects(s: AsyncSession, workspace: str,
                    services: list[tuple[str, ServiceOverview]]) -> list[ProjectOverview]:
    query = (select(Project.id, Project.name, Project.description)
             .where(Project.workspace_id == workspace).order_by(Project.name))
    return [ProjectOverview(name=row.name, description=row.description,
                            services=[found for owner, found in services if owner == row.id])
            for row in await s.execute(query)]


async def _services(s: AsyncSession, workspace: str) -> list[Row[Any]]:
    query = (select(Service.id, Service.project_id, Service.name, Service.kind)
             .where(Service.workspace_id == workspace).order_by(Service.name))
    return list(await s.execute(query))


async def _newest(s: AsyncSession, workspace: str, order: Any, *where: ColumnElement[bool]
                  ) -> Rows:
    """Each service's first deployment in `order`, newest first (one query, ranked)."""
    rank = func.row_number().over(partition_by=Deployment.service_id,
                                  order_by=(order.desc(), Deployment.id.desc())).label("rank")
    ranked = (select(Deployment.service_id, Deployment.id, Deployment.status,
                     Deployment.image_tag, Deployment.finished_at, rank)
              .where(Deployment.workspace_id == workspace, *where).subquery())
    rows = await s.execute(select(ranked).where(ranked.c.rank == 1))
    return {row.service_id: row for row in rows}


async def _requests(s: AsyncSession, workspace: str, first: int) -> dict[str, int]:
    """Each service's requests since `first`, on all its servers and releases."""
    query = (select(AppMetricMinute.service_id, func.sum(AppMetricMinute.requests))
             .join(Service, Service.id == AppMetricMinute.service_id)
             .where(Service.workspace_id == workspace, AppMetricMinute.minute >= first)
             .group_by(AppMetricMinute.service_id))
    return {service_id: int(total or 0) for service_id, total in await s.execute(query)}


def _service(row: Row[Any], last: Rows, live: Rows, rates: Mapping[str, float]
             ) -> tuple[str, ServiceOverview]:
    newest, serving = last.get(row.id), live.get(row.id)
    return row.project_id, ServiceOverview(
        name=row.name, kind=row.kind, state=_state(ServiceKind(row.kind), newest),
        last_deployment_id=newest.id if newest else None,
        live=LiveRelease(deployment_id=serving.id, image_tag=serving.image_tag,
                         live_since=serving.finished_at) if serving else None,
        request_rate=rates.get(row.id, 0.0))


def _state(kind: ServiceKind, newest: Row[Any] | None) -> ServiceState:
    if newest is not None:
        return STATES[DeploymentStatus(newest.status)]
    return ServiceState.NEVER_DEPLOYED if kind is ServiceKind.APP else ServiceState.STATEFUL
