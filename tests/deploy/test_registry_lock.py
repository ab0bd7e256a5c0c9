"""A deploy pushes its release holding the registry's lock shared (issue 19): while the
registry's garbage collection holds it exclusively the push waits, saying so in the deploy's
log, and a collection asked during a push waits for the push to end. In process: the real
runner and engine, real agent apps over ASGI with fake Docker (tests/deploy/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel import host_lock
from tests import sqlite_only
from tests.deploy.conftest import AgentNode
from tests.deploy.fake_docker import Hold
from tests.deploy.test_engine import outcome, start, until

database_url = sqlite_only.database_url  # nothing here depends on the database kind

WAIT_SAID = "waiting for the registry's garbage collection to end before pushing"
Nodes = dict[str, AgentNode]


def registry_lock(platform: Platform) -> Path:
    return platform.settings.data_dir / host_lock.REGISTRY_LOCK


def pushes(nodes: Nodes) -> int:
    return sum(node.docker.calls.count("push") for node in nodes.values())


async def said(runner: DeployRunner, deployment_id: str, message: str) -> bool:
    return any(e.message == message for e in await runner.events.since(deployment_id, 0))


async def until_said(runner: DeployRunner, deployment_id: str, message: str) -> None:
    async with asyncio.timeout(30):
        async for event in runner.events.follow(deployment_id):
            if event and event.message == message:
                return
    raise AssertionError(f"the deploy ended without saying {message!r}")


async def test_a_push_waits_for_the_collection_and_says_so(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: Callable[..., DeployRunner]
        ) -> None:
    runner = make_runner()
    async with host_lock.held(registry_lock(platform), 0.01):  # the collection runs
        deployment_id = await start(platform, runner, shop)
        await until_said(runner, deployment_id, WAIT_SAID)
        assert pushes(nodes) == 0
    assert (await outcome(platform, runner, shop, deployment_id)).status == "succeeded"
    assert pushes(nodes) == 1


async def test_a_collection_asked_during_a_push_waits_for_it_to_end(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: Callable[..., DeployRunner]
        ) -> None:
    holds = {name: Hold("push") for name in nodes}
    for name, node in nodes.items():
        node.docker.hold = holds[name]
    runner = make_runner()
    deployment_id = await start(platform, runner, shop)
    await until(lambda: any(h.reached.is_set() for h in holds.values()), "a push")
    waited, collecting = asyncio.Event(), asyncio.Event()
    collection = asyncio.create_task(_collect(registry_lock(platform), waited, collecting))
    await asyncio.wait_for(waited.wait(), 10)  # asked for 0.1 s, every 0.01 s
    assert not collecting.is_set()
    for hold in holds.values():
        hold.release.set()
    await asyncio.wait_for(collecting.wait(), 10)
    await collection
    assert (await outcome(platform, runner, shop, deployment_id)).status == "succeeded"
    assert not await said(runner, deployment_id, WAIT_SAID)


async def _collect(lock: Path, waited: asyncio.Event, collecting: asyncio.Event) -> None:
    """Hold the lock exclusively, as the collection does; `waited` set after 0.1 s of asking."""
    async def say() -> None:
        waited.set()

    async with host_lock.held(lock, 0.01, notice=host_lock.Notice(0.1, say)):
        collecting.set()
