"""A service's auto-scaling policy and the decisions the autoscaler took."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import autoscale_policies as policies
from dockyard.models.autoscale import AutoscalePublic, AutoscaleSet, DecisionPublic

router = api_router(prefix="/projects/{project}/services/{service}/autoscale",
                   tags=["autoscale"], responses=WRITE_RESPONSES)


@router.put("", operation_id="set_autoscale",
            summary="Auto-scale the web process between min and max toward a target")
async def set_autoscale(project: ProjectName, service: ServiceName, body: AutoscaleSet,
                        platform: PlatformDep, actor: ActorDep) -> AutoscalePublic:
    return await policies.set_policy(platform, actor, project, service, body)


@router.get("", operation_id="get_autoscale", summary="The service's auto-scaling policy")
async def get_autoscale(project: ProjectName, service: ServiceName, platform: PlatformDep,
                        actor: ActorDep) -> AutoscalePublic:
    return await policies.get_policy(platform, actor, project, service)


@router.delete("", status_code=204, operation_id="delete_autoscale",
               summary="Stop auto-scaling (the replicas stay as they are)")
async def delete_autoscale(project: ProjectName, service: ServiceName, platform: PlatformDep,
                           actor: ActorDep) -> None:
    await policies.delete_policy(platform, actor, project, service)


@router.get("/decisions", operation_id="list_autoscale_decisions",
            summary="The autoscaler's latest decisions for the service, newest first")
async def list_decisions(project: ProjectName, service: ServiceName, platform: PlatformDep,
                         actor: ActorDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
                         ) -> list[DecisionPublic]:
    return await policies.decisions(platform, actor, project, service, limit)
