"""Forge webhooks, repository links and their deliveries."""

from __future__ import annotations

from fastapi import Request

from dockyard.api.deps import ActorDep, ClientDep, PlatformDep
from dockyard.api.errors import LIMITED_RESPONSES, WRITE_RESPONSES, _described
from dockyard.api.routes.deploys import RunnerDep
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import repo_links, webhooks
from dockyard.models.hook_schemas import (
    DeliveryPublic,
    HookAnswer,
    RepoLinkPublic,
    RepoLinkSecret,
    RepoLinkSet,
    RepoUnlinked,
)
from dockyard.models.hooks import Provider

router = api_router(tags=["hooks"])
LINK = "/projects/{project}/services/{service}/repo-link"
HOOK_RESPONSES = {**LIMITED_RESPONSES, 400: _described(
    "The body or headers are not what this provider sends.")}


@router.post("/hooks/{provider}", summary="Receive a forge's webhook delivery (no user auth: "
             "the delivery's signature is checked against each link's secret)",
             responses=HOOK_RESPONSES)
async def receive_hook(provider: Provider, request: Request, platform: PlatformDep,
                       runner: RunnerDep, client: ClientDep) -> HookAnswer:
    return await webhooks.receive(platform, runner, provider, request.headers,
                                  request.stream(), client)


@router.put(LINK, summary="Link a service to a repository and branch (a new webhook secret, "
            "shown once)", responses=WRITE_RESPONSES)
async def link_repo(project: ProjectName, service: ServiceName, body: RepoLinkSet,
                    platform: PlatformDep, actor: ActorDep, runner: RunnerDep
                    ) -> RepoLinkSecret:
    return await repo_links.link(platform, runner.connect, actor, project, service, body)


@router.get(LINK, summary="Show a service's repository link", responses=WRITE_RESPONSES)
async def show_repo_link(project: ProjectName, service: ServiceName, platform: PlatformDep,
                         actor: ActorDep) -> RepoLinkPublic:
    return await repo_links.show(platform, actor, project, service)


@router.delete(LINK, summary="Unlink a service from its repository (its previews are "
               "taken down first)", responses=WRITE_RESPONSES)
async def unlink_repo(project: ProjectName, service: ServiceName, platform: PlatformDep,
                      actor: ActorDep, runner: RunnerDep) -> RepoUnlinked:
    return await repo_links.unlink(platform, runner.connect, actor, project, service)


@router.post(f"{LINK}/rotate-secret", summary="Replace the webhook secret (shown once)",
             responses=WRITE_RESPONSES)
async def rotate_hook_secret(project: ProjectName, service: ServiceName,
                             platform: PlatformDep, actor: ActorDep) -> RepoLinkSecret:
    return await repo_links.rotate_secret(platform, actor, project, service)


@router.get(f"{LINK}/deliveries", summary="The webhook deliveries received, newest first",
            responses=WRITE_RESPONSES)
async def list_deliveries(project: ProjectName, service: ServiceName, platform: PlatformDep,
                          actor: ActorDep) -> list[DeliveryPublic]:
    return await repo_links.deliveries(platform, actor, project, service)
