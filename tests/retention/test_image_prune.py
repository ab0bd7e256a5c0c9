"""The worker's `images.prune` job against a real docker-registry: the registry keeps the
release images of running deployments and of those a rollback can go to (keep_releases
newest), and is garbage-collected even while a deployment runs (the collection and pushes
never overlap: tests/agent/test_registry_gc.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import image_prune, registry_gc
from dockyard.core.platform import Platform
from dockyard.kernel.queue.runner import ALL_TASKS, load_tasks
from dockyard.models.base import new_id, utcnow
from dockyard.models.deployment_plan import DeploymentPlan, FromImage
from dockyard.models.deploys import Effective
from dockyard.models.enums import DeploymentStatus
from dockyard.models.tables import Deployment, Service
from dockyard.providers import images, local
from tests.agent.test_registry_gc import blob_bytes, push_release, registry_root
from tests.conftest import Account
from tests.retention.test_retention import service_of

pytestmark = pytest.mark.slow
__all__ = ["registry_root"]  # a fixture
NAME = "ws/shop/web"


@pytest.fixture(scope="module")
def docker_api() -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=local.ensure_local_docker(images.ImageSettings().cache_dir))
    yield api
    api.close()


def release(service: Service, address: str, status: DeploymentStatus, age: int) -> Deployment:
    deployment_id = new_id()
    plan = DeploymentPlan(source=FromImage(image="hello:1"),
                          image=f"{address}/{NAME}:deploy_{deployment_id[:8]}",
                          params=Effective(keep_releases=2), servers=[], site="shop-web",
                          hosts=[])
    finished = None if status is DeploymentStatus.RUNNING else utcnow()
    return Deployment(id=deployment_id, workspace_id=service.workspace_id,
                      service_id=service.id, **plan.to_columns(), status=status,
                      finished_at=finished and finished.replace(microsecond=0, second=age))


def test_the_worker_prunes_images_every_six_hours() -> None:
    tasks = load_tasks(ALL_TASKS)
    assert tasks.get(image_prune.PRUNE_TASK) is not None
    assert [p.cron for p in tasks.periodic if p.task == image_prune.PRUNE_TASK] == [
        "17 */6 * * *"]


async def test_the_registry_keeps_what_can_be_rolled_back_to_and_collects_the_rest(
        platform: Platform, client: httpx.AsyncClient, owner: Account,
        docker_api: docker.APIClient, registry_root: Path) -> None:
    address = (registry_root / "config.yml").read_text().split("addr: ")[1].strip()
    platform.settings = platform.settings.model_copy(update={
        "registry": address, "registry_config": registry_root / "config.yml"})
    service = await service_of(platform, client, owner)
    rows = [release(service, address, DeploymentStatus.SUCCEEDED, age) for age in (1, 2, 3)]
    running = release(service, address, DeploymentStatus.RUNNING, 0)
    await platform.db.write(lambda s: _add(s, [*rows, running]))
    for row in [*rows, running]:
        push_release(docker_api, address, (row.image_tag or "").rpartition(":")[2])
    before = blob_bytes(registry_root)

    busy = await image_prune.prune_registry(platform)

    def tagged(row: Deployment) -> registry_gc.Tagged:
        return registry_gc.Tagged(NAME, (row.image_tag or "").rpartition(":")[2])
    assert busy.dropped == [tagged(rows[0])]  # the oldest of three releases; keep_releases=2
    assert busy.collected is True  # a deployment runs: its release is kept
    assert before - blob_bytes(registry_root) >= 256 * 1024

    await platform.db.write(lambda s: s.execute(update(Deployment).where(
        Deployment.id == running.id).values(status=DeploymentStatus.FAILED)))
    idle = await image_prune.prune_registry(platform)

    assert idle.collected is True
    assert idle.dropped == [tagged(running)]  # failed: nothing keeps it any more
    assert before - blob_bytes(registry_root) >= 2 * 256 * 1024
    found = registry_gc.Registry(address)
    try:
        assert set(await found.release_tags()) == {tagged(rows[1]), tagged(rows[2])}
    finally:
        await found.aclose()


async def _add(s: AsyncSession, rows: list[Deployment]) -> None:
    s.add_all(rows)
