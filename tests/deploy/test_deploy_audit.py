"""The audit trail of a deployment: who started it (and from which request), and how it
ended; not each phase and progress write of the engine. In process, as test_engine.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import deployments
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.context import bind_request_id
from dockyard.models.deploys import DeployRequest, RollbackRequest
from dockyard.models.enums import Role
from dockyard.models.tables import AuditEvent
from tests import sqlite_only
from tests.deploy.conftest import AgentNode
from tests.deploy.fake_docker import Hold

database_url = sqlite_only.database_url  # the history rows are written alike on both

FAST = {"grace_seconds": 0, "health_interval_seconds": 0.05, "health_attempts": 20}


async def history_since(platform: Platform, after_id: int) -> list[AuditEvent]:
    async def tx(s: AsyncSession) -> list[AuditEvent]:
        query = select(AuditEvent).where(AuditEvent.id > after_id).order_by(AuditEvent.id)
        return list(await s.scalars(query))

    return await platform.db.read(tx)


async def deploy(platform: Platform, runner: DeployRunner, shop: Any, request_id: str) -> str:
    """A deployment of an image (the first two), then a rollback to the first."""
    bind_request_id(request_id)
    actor = shop.actor(Role.OWNER)
    if request_id == "req-rollback":
        rollback = RollbackRequest(project="shop", service="web")
        deployment_id = await deployments.start_rollback(platform, runner, actor, rollback)
    else:
        body = DeployRequest.model_validate({
            "project": "shop", "service": "web", "params": FAST,
            "source": {"kind": "image", "image": "registry.test:5000/hello:1"}})
        deployment_id = await deployments.start_deploy(platform, runner, actor, body)
    await runner.wait_idle()
    return deployment_id


async def test_a_deployment_or_rollback_leaves_two_history_rows_its_start_and_outcome(
        platform: Platform, shop: Any, make_runner: Callable[..., DeployRunner]) -> None:
    runner = make_runner()
    for attempt in ("first", "second", "rollback"):
        before = max([0] + [e.id for e in await history_since(platform, 0)])
        deployment_id = await deploy(platform, runner, shop, f"req-{attempt}")
        rows = await history_since(platform, before)
        assert [(r.action.value, r.entity_type, r.entity_id) for r in rows] == [
            ("create", "deployments", deployment_id), ("update", "deployments", deployment_id)]
        after = rows[1].after or {}
        assert {r.actor_user_id for r in rows} == {shop.user_id}
        assert {r.request_id for r in rows} == {f"req-{attempt}"}
        assert rows[1].before == {"status": "running", "error": "", "finished_at": None,
                                  "image_tag": after["image_tag"]}
        assert after["status"] == "succeeded"
        assert set(after) == {"status", "error", "image_tag", "finished_at"}
        assert after["finished_at"] is not None


async def test_a_failed_deployment_leaves_its_start_and_its_failure(
        platform: Platform, shop: Any, nodes: dict[str, AgentNode],
        make_runner: Callable[..., DeployRunner]) -> None:
    runner = make_runner()
    await deploy(platform, runner, shop, "req-first")
    before = max(e.id for e in await history_since(platform, 0))
    nodes["node3"].docker.hold = hold = Hold("start", fail="the container exited at once")
    hold.release.set()
    deployment_id = await deploy(platform, runner, shop, "req-failing")
    rows = await history_since(platform, before)
    assert [(r.action.value, r.entity_id, r.actor_user_id) for r in rows] == [
        ("create", deployment_id, shop.user_id), ("update", deployment_id, shop.user_id)]
    assert (rows[1].after or {})["status"] == "failed"
    assert "node3: the container exited at once" in (rows[1].after or {})["error"]
