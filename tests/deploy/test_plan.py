"""The typed deployment plan: the JSON column shapes written before it existed still load,
and what it writes has those same shapes; the phases' order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from dockyard.core import deployments
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.models.base import new_id
from dockyard.models.deployment_plan import (
    DeploymentPlan,
    FromArchive,
    FromGit,
    FromImage,
    FromRelease,
    Owner,
    Phase,
    Step,
    StepState,
    origin_of,
)
from dockyard.models.deploys import DeployRequest
from dockyard.models.enums import DeploymentStatus, Role, ServiceKind, SourceKind
from dockyard.models.tables import Deployment, Server, Service

OWNER = {"host": "cp-1", "pid": 4242, "nonce": "0123456789abcdef"}
# Exactly what the code before the typed plan wrote (core/deployments.py, deploy/run.py).
OLD_SOURCES: list[tuple[SourceKind, dict[str, Any], type]] = [
    (SourceKind.GIT, {"url": "https://example.test/app.git", "ref": "main"}, FromGit),
    (SourceKind.GIT, {"url": "https://example.test/app.git"}, FromGit),
    (SourceKind.ARCHIVE, {"path": "/var/lib/dockyard/builds/x/app", "bytes": 2048}, FromArchive),
    (SourceKind.IMAGE, {"image": "nginx:1.27"}, FromImage),
    (SourceKind.ROLLBACK, {"release": "f" * 32}, FromRelease),
    (SourceKind.RELEASE, {"release": "e" * 32}, FromRelease),
]


def old_row(kind: SourceKind, source: dict[str, Any], server_ids: list[str]) -> dict[str, Any]:
    return {
        "source_kind": kind, "source": source, "image_tag": "127.0.0.1:5000/default/shop/web:"
        "deploy_abcdef12", "phase": "rollout", "config": {
            "params": {"port": 9000, "health_path": "/up", "grace_seconds": 0.0},
            "servers": server_ids, "site": "shop-web", "hosts": ["web.shop.localhost"]},
        "progress": {"owner": OWNER, "servers": {
            server_ids[0]: {"step": "switch", "state": "done"}}},
    }


@pytest.mark.parametrize(("kind", "source", "typed"), OLD_SOURCES)
async def test_a_row_in_the_old_shape_loads_and_is_written_back_the_same(
        platform: Platform, shop: Any, make_runner: Callable[..., DeployRunner],
        kind: SourceKind, source: dict[str, Any], typed: type) -> None:
    async def insert(s: Any) -> tuple[str, list[str]]:
        service = await s.scalar(select(Service).where(Service.name == "web"))
        ids = sorted((await s.scalars(select(Server.id))).all())
        row = Deployment(id=new_id(), workspace_id=service.workspace_id, service_id=service.id,
                         status=DeploymentStatus.FAILED, **old_row(kind, source, ids),
                         env_ciphertext=platform.box.encrypt('{"GREETING": "hi"}'))
        s.add(row)
        return row.id, ids

    deployment_id, ids = await platform.db.write(insert)
    run = await make_runner().load(deployment_id)
    await run.close()
    assert isinstance(run.source, typed)
    assert run.env == {"GREETING": "hi"}
    assert (run.source_kind, run.phase, run.site, run.hosts) == (
        kind, Phase.ROLLOUT, "shop-web", ["web.shop.localhost"])
    assert (run.params.port, run.params.health_path, run.params.health_attempts) == (
        9000, "/up", 60)
    assert [t.id for t in run.targets] == ids
    assert sorted(t.name for t in run.targets) == ["node1", "node2", "node3"]
    assert run.image.reference == "127.0.0.1:5000/default/shop/web:deploy_abcdef12"
    assert run.progress.owner == Owner(**OWNER)
    assert run.progress.servers[ids[0]].step is Step.SWITCH
    assert run.progress.servers[ids[0]].state is StepState.DONE
    assert run.progress.to_column() == old_row(kind, source, ids)["progress"]
    columns = run.plan.to_columns()
    assert (columns["source_kind"], columns["source"]) == (kind, source)
    public = await deployments.get_deployment(platform, shop.actor(Role.OWNER), deployment_id)
    assert public.source == {k: v for k, v in source.items() if k != "path"}
    assert public.config["params"]["port"] == 9000


@pytest.mark.parametrize(("requested", "typed"), [
    ({"kind": "git", "url": "https://example.test/app.git", "ref": "v1"},
     FromGit(url="https://example.test/app.git", ref="v1")),
    ({"kind": "image", "image": "nginx:1.27"}, FromImage(image="nginx:1.27")),
    ({"kind": "release"}, FromRelease(kind="release")),
])
def test_a_requested_source_becomes_the_plans(requested: dict[str, Any], typed: Any) -> None:
    body = DeployRequest.model_validate({"project": "p", "service": "s", "source": requested})
    assert origin_of(body.source) == typed


def test_only_the_phases_from_commit_on_are_past_the_switch() -> None:
    past = [phase for phase in Phase if phase.past_switch]
    assert past == [Phase.COMMIT, Phase.DONE]
    assert Phase("") is Phase.START


def test_a_plan_written_is_read_back_equal() -> None:
    plan = DeploymentPlan.model_validate({
        "source": {"kind": "git", "url": "https://example.test/a.git"}, "image": "r/a:deploy_1",
        "params": {"port": 5000}, "servers": ["a", "b"], "site": "p-s", "hosts": ["s.p.test"],
        "links": [{"service": "redis", "kind": "redis", "variable": "REDIS_URL",
                   "hostname": "redis.p.dockyard.internal", "server_id": "a",
                   "server_ip": "10.0.0.1", "given_by": "you"}]})
    row = Deployment(**plan.to_columns())
    assert row.source == {"url": "https://example.test/a.git"}
    assert set(row.config) == {"params", "servers", "site", "hosts", "processes", "only",
                               "run_release", "links"}
    assert DeploymentPlan.from_row(row) == plan


def test_a_plan_stored_before_process_types_reads_as_web_alone() -> None:
    row = Deployment(source_kind="image", source={"image": "r/a:1"}, image_tag="r/a:deploy_1",
                     config={"params": {}, "servers": ["a"], "site": "p-s", "hosts": ["h.p"]})
    plan = DeploymentPlan.from_row(row)
    assert (plan.processes.types(), plan.only, plan.run_release) == (["web"], None, True)
    assert plan.links == []  # and before stateful services: linked to none


async def test_an_unreadable_progress_is_not_taken_over_and_does_not_stop_the_others(
        platform: Platform, shop: Any, make_runner: Callable[..., DeployRunner],
        caplog: pytest.LogCaptureFixture) -> None:
    runner = make_runner()
    dead = {**runner.owner.model_dump(), "nonce": "another-process"}  # same pid: a restart

    async def insert(s: Any) -> list[str]:
        ids = []
        for name, progress in (("bad", {"owner": "garbage"}), ("good", {"owner": dead})):
            service = Service(workspace_id=shop.workspace_id, project_id=(
                await s.scalar(select(Service).where(Service.name == "web"))).project_id,
                name=name, kind=ServiceKind.APP)
            s.add(service)
            await s.flush()
            columns = {**old_row(SourceKind.IMAGE, {"image": "nginx:1.27"}, ["x"]),
                       "phase": "build", "progress": progress}
            row = Deployment(id=new_id(), workspace_id=shop.workspace_id, service_id=service.id,
                             status=DeploymentStatus.RUNNING, **columns)
            s.add(row)
            ids.append(row.id)
        return ids

    bad, good = await platform.db.write(insert)
    assert await runner._claim_orphans() == [good]
    assert f"deployment {bad} has unreadable progress" in caplog.text


def test_a_containers_process_comes_from_its_labels() -> None:
    from dockyard.deploy.plan import PROCESS_TYPE_LABEL, REPLICA_LABEL, process_of

    assert process_of({}) == ("web", 1)
    assert process_of({PROCESS_TYPE_LABEL: "worker", REPLICA_LABEL: "3"}) == ("worker", 3)
    assert process_of({REPLICA_LABEL: "x"}) == ("web", 1)
