"""Deployments a webhook starts: as the member who linked the repository, with their role of
today, of exactly the pushed commit, fetched with the link's credential."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor
from dockyard.core.deployments import start_source
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.deploy.sources import validate_commit, validate_git_ref
from dockyard.kernel.errors import Forbidden
from dockyard.models.deployment_plan import FromGit
from dockyard.models.deploys import DeployTarget
from dockyard.models.hooks import LinkInfo
from dockyard.models.tables import Membership, User


async def acting_as(p: Platform, link: LinkInfo) -> Actor:
    """The member who linked the repository; Forbidden once they are no longer one."""

    async def tx(s: AsyncSession) -> Actor:
        membership = await s.scalar(select(Membership).where(
            Membership.workspace_id == link.workspace_id, Membership.user_id == link.user_id))
        user = await s.get(User, link.user_id)
        if membership is None or user is None or not user.is_active:
            raise Forbidden(f"the member who linked {link.project}/{link.service} to its "
                            "repository is no longer in the workspace; link it again")
        return Actor(user_id=link.user_id, workspace_id=link.workspace_id,
                     role=membership.role)

    return await p.db.read(tx)


async def deploy_commit(p: Platform, runner: DeployRunner, link: LinkInfo, project: str,
                        service: str, commit: str, ref: str) -> str:
    """Start a deployment of `commit` (reached from branch `ref`) of the link's repository to
    project/service; returns its id. Conflict while the service is being deployed."""
    actor = await acting_as(p, link)
    source = FromGit(url=link.repo_url, ref=validate_git_ref(ref),
                     commit=validate_commit(commit), link_id=link.id)
    target = DeployTarget(project=project, service=service)
    return await start_source(p, runner, actor, target, source)
