"""A deploy's image prune on each server, and a service's teardown, remove the dangling
images older than the build cache age (DOCKYARD_BUILD_CACHE_DAYS), not a fixed week. In
process, as test_engine.py (three real agent apps with real nginx, fake Docker)."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.agent.commands import EngineCall
from dockyard.core import services
from dockyard.core.platform import Platform
from dockyard.models.enums import Role
from tests.deploy.test_engine import MakeRunner, Nodes, live_release

HALF_A_DAY = {"dangling": True, "until": "43200s"}


def record_prunes(nodes: Nodes, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The filters of every dangling-image prune the nodes' engines are asked for."""
    seen: list[Any] = []
    for node in nodes.values():
        async def run(call: EngineCall, engine_run: Any = node.docker.run) -> Any:
            if call.method == "prune_images":
                seen.append(call.kwargs["filters"])
            return await engine_run(call)

        monkeypatch.setattr(node.docker, "run", run)
    return seen


async def test_deploy_and_teardown_prune_dangling_images_of_the_build_cache_age(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    platform.settings = platform.settings.model_copy(update={"build_cache_days": 0.5})
    seen = record_prunes(nodes, monkeypatch)
    runner = make_runner()
    await live_release(platform, runner, shop)
    assert seen == [HALF_A_DAY] * 3
    await services.delete_service(platform, runner.connect, shop.actor(Role.OWNER), "shop",
                                  "web")
    assert seen == [HALF_A_DAY] * 6
