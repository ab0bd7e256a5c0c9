"""Deploys end to end on a 3-node namespace cluster: every source kind, several servers, a
failing health check, env changes and rollback, a refused concurrent deploy, a control plane
killed mid-deploy, and old release images removed."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.stage import EXAMPLE, Stage
from tests.live import bring_up, pid_alive, wait_until

pytestmark = pytest.mark.slow
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
HOST = "hello.shop.localhost"


def done_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events, "no events"
    assert events[-1]["kind"] == "done", events[-5:]
    return events[-1]


def release_of(stage: Stage, node: dict[str, Any], host: str = HOST) -> dict[str, Any]:
    answer = stage.app(node, host)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_code_deploy_reaches_every_server(stage: Stage) -> None:
    stage.ensure_service("shop", "hello")
    events = stage.deploy_archive(EXAMPLE, project="shop", service="hello",
                                  server=[n["name"] for n in stage.nodes])
    done = done_of(events)
    assert done["status"] == "succeeded", done
    assert any(e["kind"] == "warning" and "offline base dockyard/base:" in e["message"]
               for e in events)
    release = done["deployment_id"][:8]
    switched = {e["server"] for e in events if e.get("step") == "switch" and e["state"] == "done"}
    assert switched == {n["name"] for n in stage.nodes}
    assert any("generated" in e["message"].lower() or "detected" in e["message"].lower()
               for e in events if e["kind"] == "log")
    for node in stage.nodes:
        assert release_of(stage, node)["release"] == release
    history = stage.history("shop", "hello")
    assert (history[0]["status"], history[0]["live"]) == ("succeeded", True)
    assert history[0]["image_tag"].startswith("10.235.0.1:5003/")
    assert history[0]["image_tag"].endswith(f"/shop/hello:deploy_{release}")


def test_a_failing_health_check_leaves_the_old_release_serving_everywhere(stage: Stage) -> None:
    before = release_of(stage, stage.nodes[0])["release"]
    events = stage.deploy_archive(EXAMPLE, project="shop", service="hello",
                                  health_path="/missing", health_attempts=3,
                                  health_interval_seconds=0.2)
    done = done_of(events)
    assert done["status"] == "failed"
    assert "health check GET /missing failed (HTTP 404)" in done["error"]
    assert "last log lines" in done["error"]
    for node in stage.nodes:
        assert release_of(stage, node)["release"] == before
    with docker.APIClient(stage.docker_socket(stage.nodes[1])) as node_docker:
        names = [c["Names"][0] for c in node_docker.containers(all=True)]
    assert not any(done["deployment_id"][:8] in name for name in names)


def test_a_hostile_archive_is_refused_before_anything_reaches_a_server(stage: Stage) -> None:
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as archive:
        for name, data in (("app.py", b"print(1)"), ("../../etc/cron.d/evil", b"* * * * *")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    before = len(stage.history("shop", "hello"))
    answer = stage.http.post("/infra/deploy", params={"project": "shop", "service": "hello"},
                             content=evil.getvalue(),
                             headers={"Content-Type": "application/gzip"})
    assert answer.status_code == 422
    assert "escapes the app directory" in answer.json()["detail"]
    assert len(stage.history("shop", "hello")) == before


def set_env(stage: Stage, **values: str) -> None:
    body = {"set": [{"key": k, "value": v} for k, v in values.items()], "unset": []}
    answer = stage.http.patch("/projects/shop/services/hello/env", json=body)
    assert answer.status_code == 200, answer.text


def redeploy(stage: Stage, **params: Any) -> dict[str, Any]:
    return done_of(stage.deploy({"project": "shop", "service": "hello",
                                 "source": {"kind": "release"}, "params": {**FAST, **params}}))


def test_env_changes_make_releases_and_rollback_restores_image_and_env(stage: Stage) -> None:
    set_env(stage, GREETING="first")
    first = redeploy(stage)
    assert first["status"] == "succeeded", first
    assert release_of(stage, stage.nodes[2])["greeting"] == "first"
    set_env(stage, GREETING="second")
    assert redeploy(stage)["status"] == "succeeded"
    assert release_of(stage, stage.nodes[2])["greeting"] == "second"

    back = done_of(stage.rollback({"project": "shop", "service": "hello"}))
    assert back["status"] == "succeeded", back
    for node in stage.nodes:
        assert release_of(stage, node)["greeting"] == "first"
    history = stage.history("shop", "hello")
    assert history[0]["source_kind"] == "rollback"
    assert history[0]["rollback_of"] == first["deployment_id"]
    assert history[0]["image_tag"] == next(
        h["image_tag"] for h in history if h["id"] == first["deployment_id"])

    again = done_of(stage.rollback({"project": "shop", "service": "hello",
                                    "release": history[0]["id"][:10]}))
    assert again["status"] == "succeeded"


def test_an_image_deploy_retags_and_serves_it(stage: Stage) -> None:
    source = stage.history("shop", "hello")[0]["image_tag"]
    stage.ensure_service("shop", "mirror")
    done = done_of(stage.deploy({"project": "shop", "service": "mirror", "servers": ["dyd-node2"],
                                 "source": {"kind": "image", "image": source},
                                 "params": FAST}))
    assert done["status"] == "succeeded", done
    tag = stage.history("shop", "mirror")[0]["image_tag"]
    assert tag.endswith(f"/shop/mirror:deploy_{done['deployment_id'][:8]}")
    answer = release_of(stage, stage.nodes[1], "mirror.shop.localhost")
    assert answer["release"] == done["deployment_id"][:8]


def git_repository(tmp: Path) -> Path:
    repository = tmp / "repo"
    shutil.copytree(EXAMPLE, repository)
    app = repository / "app.py"
    app.write_text(app.read_text().replace('"Hello from Dockyard"', '"Hello from git"'))
    for argv in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@e.st", "commit", "-qm", "one"],
                 ["tag", "v1"]):
        subprocess.run(["git", "-C", str(repository), *argv], check=True)
    return repository


def test_a_git_deploy_builds_the_ref(stage: Stage, tmp_path: Path) -> None:
    repository = git_repository(tmp_path)
    stage.ensure_service("shop", "fromgit")
    done = done_of(stage.deploy({
        "project": "shop", "service": "fromgit", "servers": ["dyd-node3"], "params": FAST,
        "source": {"kind": "git", "url": f"file://{repository}", "ref": "v1"}}))
    assert done["status"] == "succeeded", done
    assert release_of(stage, stage.nodes[2], "fromgit.shop.localhost")["greeting"] == \
        "Hello from git"


def test_a_second_deploy_while_one_runs_is_refused(stage: Stage) -> None:
    events = stage.stream("/infra/deploy", json={
        "project": "shop", "service": "hello", "source": {"kind": "release"},
        "params": {**FAST, "grace_seconds": 3}})
    first = next(events)
    refused = stage.http.post("/infra/deploy", json={
        "project": "shop", "service": "hello", "source": {"kind": "release"}})
    assert refused.status_code == 409
    assert f"being deployed by deployment {first['deployment_id'][:8]}" in \
        refused.json()["detail"]
    assert next(e for e in events if e["kind"] == "done")["status"] == "succeeded"


class Watcher:
    """Requests the app through every node's nginx until stopped; counts what was not 200."""

    def __init__(self, stage: Stage) -> None:
        self.stage, self.failures, self.answers = stage, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for node in self.stage.nodes:
                try:
                    status = self.stage.app(node, HOST).status_code
                except Exception as exc:  # every failure is counted
                    status = repr(exc)
                self.answers += 1
                if status != 200:
                    self.failures.append(status)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def kill_the_api_when(stage: Stage, params: dict[str, Any], moment: Any) -> dict[str, Any]:
    """Start a new release, SIGKILL the API at `moment(event)`, start it again, and return
    the deployment once it has ended."""
    events = stage.stream("/infra/deploy", json={
        "project": "shop", "service": "hello", "source": {"kind": "release"},
        "params": {**FAST, **params}})
    deployment_id = ""
    for event in events:
        deployment_id = event["deployment_id"]
        if moment(event):
            break
    pid = int((Path(stage.env["DOCKYARD_DATA_DIR"]) / "api.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), "the API is gone")
    events.close()
    bring_up(stage.env)

    def finished() -> bool:
        answer = stage.http.get(f"/infra/deployments/{deployment_id}")
        return answer.json()["status"] not in ("queued", "running")

    wait_until(finished, "the interrupted deployment ends", timeout=120)
    result: dict[str, Any] = stage.http.get(f"/infra/deployments/{deployment_id}").json()
    return result


def test_killing_the_control_plane_before_the_switch_puts_the_old_release_back(
        stage: Stage) -> None:
    serving = release_of(stage, stage.nodes[0])["release"]
    watcher = Watcher(stage)
    after = kill_the_api_when(stage, {"health_attempts": 200, "health_path": "/healthz"},
                              lambda e: e.get("step") == "start" and e["state"] == "done")
    watcher.stop()
    assert after["status"] == "failed"
    assert "interrupted by a control-plane restart" in after["error"]
    assert watcher.failures == []
    assert watcher.answers > 0
    for node in stage.nodes:
        assert release_of(stage, node)["release"] == serving
    assert redeploy(stage)["status"] == "succeeded"


def test_killing_the_control_plane_while_draining_finishes_the_deploy(stage: Stage) -> None:
    watcher = Watcher(stage)
    after = kill_the_api_when(stage, {"grace_seconds": 5}, lambda e: e["kind"] == "phase"
                              and e.get("phase") == "commit")
    watcher.stop()
    assert (after["status"], after["error"]) == ("succeeded", "")
    assert watcher.failures == []
    for node in stage.nodes:
        assert release_of(stage, node)["release"] == after["id"][:8]
        with docker.APIClient(stage.docker_socket(node)) as node_docker:
            running = node_docker.containers(filters={"label": "dockyard.service=shop-hello"})
        assert [c["Labels"]["dockyard.deployment"] for c in running] == [after["id"]]


def test_old_release_images_are_removed_from_servers(stage: Stage) -> None:
    """Four images were built for hello so far; after two more builds keeping one, only the
    live one is left on each server."""
    for _ in range(2):
        events = stage.deploy_archive(EXAMPLE, project="shop", service="hello",
                                      keep_releases=1, grace_seconds=0.5)
        assert done_of(events)["status"] == "succeeded"
    live = stage.history("shop", "hello")[0]["image_tag"]
    for node in stage.nodes:
        with docker.APIClient(stage.docker_socket(node)) as node_docker:
            tags = [t for image in node_docker.images() for t in image.get("RepoTags") or []
                    if "/shop/hello:deploy_" in t]
        assert tags == [live]
