"""A git request to a service's remote: who may do it, the repository it reaches, and the
backend that answers it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.gitpush import access, repos
from dockyard.gitpush.backend import CgiAnswer, run_backend
from dockyard.gitpush.cgi import GitRequest, backend_env, is_push
from dockyard.gitpush.context import PushContext
from dockyard.kernel.errors import InvalidInput
from dockyard.models.enums import ServiceKind
from dockyard.models.tables import RepoLink

DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class GitCall:
    """A git client's request to `{api_url}/git/{project}/{service}.git/...`."""

    project: str
    service: str
    request: GitRequest
    authorization: str | None
    client: str
    api_url: str


@dataclass(frozen=True)
class Target:
    service_id: str
    branch: str


async def serve_git(p: Platform, call: GitCall, body: AsyncIterator[bytes]) -> CgiAnswer:
    """Answer one git request with `git http-backend`: fetching needs READ, pushing WRITE; a
    push's hook deploys as the pusher, with their own token."""
    push = is_push(call.request)
    actor = await access.git_actor(p, call.authorization, call.client)
    target = await p.db.read(lambda s: _target(s, actor, call.project, call.service))
    actor.require(Permission.WRITE if push else Permission.READ)
    root = repos.repo_root(p.settings.data_dir)
    await to_thread.run_sync(repos.ensure_repo, root, target.service_id, target.branch)
    env = backend_env(call.request, root, repos.repo_name(target.service_id), actor.user_id,
                      os.environ.get("PATH", ""))
    if push:
        env |= _context(call, actor, target).env()
    return await run_backend(env, body, p.settings.max_archive_bytes)


async def _target(s: AsyncSession, actor: Actor, project: str, name: str) -> Target:
    service = await service_named(s, actor, project, name)
    if service.kind != ServiceKind.APP:
        raise InvalidInput(f"{project}/{name} is a {service.kind} service; only apps are "
                           "deployed with git push")
    branch = await s.scalar(select(RepoLink.branch).where(RepoLink.service_id == service.id))
    return Target(service.id, branch or DEFAULT_BRANCH)


def _context(call: GitCall, actor: Actor, target: Target) -> PushContext:
    token = access.basic_password(call.authorization) or ""
    return PushContext(api_url=call.api_url, token=token, workspace_id=actor.workspace_id,
                       project=call.project, service=call.service, branch=target.branch)
