"""The worker's `images.prune` job, every 6 hours: each server's agent removes dangling
images and build cache unused for `build_cache_days` (core of the node's image disk; release
images themselves are pruned by each deploy), then the registry drops the release images no
service keeps and is garbage-collected, holding the registry's lock exclusively: pushes under
way end first and new ones wait until it ends (deploy/build.py holds it shared). The lock is a
file of this machine's data dir: the deploys and the registry are on the control-plane host."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError
from dockyard.agent.models import CachePruneRequest
from dockyard.core import agents, fleet, logcollect, registry_gc, retention
from dockyard.core.platform import Platform
from dockyard.deploy.plan import parse_image
from dockyard.kernel import host_lock
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.kernel.settings import Settings
from dockyard.models.tables import Deployment

log = logging.getLogger("dockyard.image_prune")
PRUNE_TASK = "images.prune"
LOCK_RETRY_SECONDS = 1.0
GC_WAIT_SECONDS = 3600  # pushes that hold the registry longer: collected on the next run


@dataclass(frozen=True)
class RegistryPruned:
    dropped: list[registry_gc.Tagged]
    collected: bool


def cache_request(settings: Settings) -> CachePruneRequest:
    return CachePruneRequest(max_age_seconds=int(settings.build_cache_days * 86400),
                             keep_bytes=settings.build_cache_keep_bytes)


async def prune_nodes(p: Platform, client_of: fleet.ClientFactory | None = None) -> int:
    """Every server's dangling images and old build cache; the bytes freed. An unreachable
    server waits for the next run."""
    client_of = client_of or agents.client_factory(await agents.agent_secrets(p))
    freed = 0
    for server in await fleet.pollable_servers(p):
        try:
            async with client_of(server) as client:
                freed += (await client.prune_cache(cache_request(p.settings))).bytes_reclaimed
        except (AgentError, httpx.HTTPError, OSError) as exc:
            log.warning("build cache of server %s not pruned this time: %s", server.name, exc)
    return freed


def registry_config(settings: Settings) -> Path | None:
    """The config of the registry Dockyard runs, if it runs one on this machine."""
    config = settings.registry_config or settings.data_dir / "registry" / "config.yml"
    return config if config.is_file() else None


async def kept_tags(s: AsyncSession, settings: Settings) -> set[registry_gc.Tagged]:
    """The release images of running deployments and of those a rollback can go to."""
    ids = await retention.kept_deployments(s, settings)
    references = await s.scalars(select(Deployment.image_tag).where(Deployment.id.in_(ids)))
    prefix, kept = f"{settings.registry}/", set()
    for reference in references:
        image = parse_image(reference or "")
        if image.repository.startswith(prefix) and image.tag:
            kept.add(registry_gc.Tagged(image.repository.removeprefix(prefix), image.tag))
    return kept


async def prune_registry(p: Platform) -> RegistryPruned:
    """Drop what no one keeps and free its blobs once no push is under way. The kept releases
    are read once the lock is held: those of deployments started meanwhile are among them."""
    lock = p.settings.data_dir / host_lock.REGISTRY_LOCK
    async with host_lock.held(lock, LOCK_RETRY_SECONDS, give_up_seconds=GC_WAIT_SECONDS) as fd:
        kept = await p.db.read(lambda s: kept_tags(s, p.settings))
        dropped = await _drop_unkept(p.settings.registry, kept)
        config = registry_config(p.settings)
        collected = config is not None and (
            await registry_gc.collect_garbage(str(config), fd)).ok
    return RegistryPruned(dropped, collected)


async def _drop_unkept(address: str, kept: set[registry_gc.Tagged]) -> list[registry_gc.Tagged]:
    registry = registry_gc.Registry(address)
    try:
        return await registry_gc.drop_unkept(registry, kept)
    finally:
        await registry.aclose()


async def prune(p: Platform) -> None:
    freed = await prune_nodes(p)
    try:
        pruned = await prune_registry(p)
    except httpx.HTTPError as exc:
        log.warning("registry not pruned this time: %s", exc)
        return
    except TimeoutError:
        log.warning("registry not pruned this time: pushes held it for %d s", GC_WAIT_SECONDS)
        return
    log.info("images: %d bytes freed on servers; %d release tags dropped from the registry, "
             "garbage %s", freed, len(pruned.dropped),
             "collected" if pruned.collected else "not collected")


TASKS = Tasks()
TASKS.every(PRUNE_TASK, "17 */6 * * *", PRUNE_TASK)


@TASKS.task(PRUNE_TASK, max_attempts=1, coalesce=True)
async def prune_job(context: JobContext, payload: dict[str, Any]) -> None:
    await prune(logcollect._platform(context))
