"""The agent's build-cache route: dangling images and build cache past their age (and
BuildKit's cache past its size) are removed; layers of kept release images stay."""

from __future__ import annotations

from dockyard.agent import commands as cmd
from dockyard.agent.models import CachePruneRequest, CachePruneResult
from dockyard.agent.parts import Parts
from dockyard.agent.runtime import DockerRuntime, EngineError
from dockyard.agent.web import Call, Routes

routes: Routes[Parts] = Routes()


async def prune_cache(runtime: DockerRuntime, request: CachePruneRequest) -> CachePruneResult:
    images = await runtime.run(cmd.prune_dangling_images(request.max_age_seconds))
    reclaimed = images.get("SpaceReclaimed") or 0
    try:
        builds = await runtime.run(cmd.prune_build_cache(request.max_age_seconds,
                                                         request.keep_bytes))
        reclaimed += builds.get("SpaceReclaimed") or 0
    except EngineError as exc:  # no BuildKit on this engine: no build cache to prune
        if exc.status_code >= 500:
            raise
    deleted = [entry for entry in images.get("ImagesDeleted") or [] if "Deleted" in entry]
    return CachePruneResult(images_removed=len(deleted), bytes_reclaimed=reclaimed)


@routes.post("/images/prune-cache", body=CachePruneRequest)
async def prune_build_cache(call: Call[Parts]) -> CachePruneResult:
    return await prune_cache(call.parts.node.runtime, call.body(CachePruneRequest))
