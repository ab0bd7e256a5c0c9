"""Domains: a hostname routed to a service on all its servers, with HTTPS and DNS."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.deploys import RunnerDep
from dockyard.api.routes.params import Hostname, ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import domains
from dockyard.models import fields
from dockyard.models.domain_schemas import DomainCreate, DomainPublic

router = api_router(tags=["domains"], responses=WRITE_RESPONSES)


@router.post("/projects/{project}/services/{service}/domains", status_code=201,
             operation_id="add_domain",
             summary="Route a domain to a service: names, DNS, then its certificate")
async def add(project: ProjectName, service: ServiceName, body: DomainCreate,
              platform: PlatformDep, actor: ActorDep, runner: RunnerDep) -> DomainPublic:
    return await domains.add_domain(platform, runner.connect, actor, project, service, body)


@router.get("/domains", operation_id="list_domains", summary="The workspace's domains")
async def list_all(platform: PlatformDep, actor: ActorDep,
                   project: Annotated[fields.Name | None, Query()] = None,
                   service: Annotated[fields.Name | None, Query()] = None
                   ) -> list[DomainPublic]:
    return await domains.list_domains(platform, actor, project, service)


@router.get("/domains/{hostname}", operation_id="get_domain", summary="One domain")
async def get(hostname: Hostname, platform: PlatformDep, actor: ActorDep) -> DomainPublic:
    return await domains.get_domain(platform, actor, hostname)


@router.post("/domains/{hostname}/renew", operation_id="renew_domain",
             summary="Obtain a new certificate now and install it on every server")
async def renew(hostname: Hostname, platform: PlatformDep, actor: ActorDep,
                runner: RunnerDep) -> DomainPublic:
    return await domains.renew_domain(platform, runner.connect, actor, hostname)


@router.delete("/domains/{hostname}", status_code=204, operation_id="remove_domain",
               summary="Stop routing a domain; its certificate and DNS records go too")
async def remove(hostname: Hostname, platform: PlatformDep, actor: ActorDep,
                 runner: RunnerDep) -> None:
    await domains.remove_domain(platform, runner.connect, actor, hostname)
