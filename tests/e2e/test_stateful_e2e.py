"""Stateful services on the namespace cluster: a Postgres and two Redis (`redis`,
`redis-logs`) in project notes, a Redis in project other, and the notes app (Flask, psycopg and
redis-py from its requirements, examples/notes) on two other servers reading DATABASE_URL,
REDIS_URL and REDIS_LOGS_URL. It writes and reads back through each, never sees the other
project's Redis, keeps working when `redis-logs` is killed, and nothing outside the
workspace's servers reaches the services."""

from __future__ import annotations

import socket
from typing import Any

import docker
import httpx
import pytest

from dockyard.providers import images
from tests.e2e.load import under_strict_load
from tests.e2e.stage import EXAMPLE, Stage
from tests.live import dockyard, ok, ok_json, wait_until

pytestmark = pytest.mark.slow
NOTES = EXAMPLE.parent / "notes"
HOST = "web.notes.localhost"
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
CONCURRENCY = 16


def create(stage: Stage, project: str, name: str, kind: str, node: dict[str, Any]
           ) -> dict[str, Any]:
    found: dict[str, Any] = ok_json(dockyard(
        "services", "create", name, "-p", project, "--kind", kind, "--server", node["name"],
        "--json", env=stage.env, timeout=300))
    return found


@pytest.fixture(scope="module")
def notes(stage: Stage) -> dict[str, dict[str, Any]]:
    """The services on node1 (postgres, redis) and node3 (redis-logs, other's redis-cache),
    the app on node2 and node1."""
    for recipe in ("postgres", "redis", "python"):
        images.bootstrap_tarball(images.RECIPES[recipe], images.ImageSettings())
    for project in ("notes", "other"):
        assert stage.http.post("/projects", json={"name": project}).status_code in (201, 409)
    node1, node2, node3 = stage.nodes
    made = {"postgres": create(stage, "notes", "postgres", "postgres", node1),
            "redis": create(stage, "notes", "redis", "redis", node1),
            "redis-logs": create(stage, "notes", "redis-logs", "redis", node3),
            "redis-cache": create(stage, "other", "redis-cache", "redis", node3)}
    stage.ensure_service("notes", "web")
    events = stage.deploy_archive(NOTES, project="notes", service="web",
                                  server=[node2["name"], node1["name"]], **FAST)
    assert events[-1]["status"] == "succeeded", events[-8:]
    return made


def call(node: dict[str, Any], method: str, path: str, body: str = "") -> httpx.Response:
    return httpx.request(method, f"http://{node['ip']}{path}", content=body,
                         headers={"Host": HOST}, timeout=15)


def test_the_app_gets_its_project_services_by_name_and_no_others(
        stage: Stage, notes: dict[str, dict[str, Any]]) -> None:
    answer = call(stage.nodes[1], "GET", "/")
    assert answer.status_code == 200, answer.text
    assert answer.json()["linked"] == ["DATABASE_URL", "REDIS_LOGS_URL", "REDIS_URL"]
    assert [n["variable"] for n in notes.values()] == [
        "DATABASE_URL", "REDIS_URL", "REDIS_LOGS_URL", "REDIS_CACHE_URL"]


def test_writes_on_one_server_read_back_on_another_through_postgres_and_redis(
        stage: Stage, notes: dict[str, dict[str, Any]]) -> None:
    node1, node2, _ = stage.nodes
    for node in (node1, node2):  # each server's app reaches both services
        answer = call(node, "GET", "/notes/nothing")
        assert answer.json() == {"database": None, "cache": None}, (node["name"], answer.text)
    saved = call(node2, "POST", "/notes/first", "written on node2")
    assert saved.status_code == 200, saved.text
    # node1 runs postgres and redis too: its app reaches them on the local Docker network
    read = call(node1, "GET", "/notes/first")
    assert read.status_code == 200, read.text
    assert read.json() == {"database": "written on node2", "cache": "written on node2"}


def test_a_host_that_is_not_a_server_cannot_reach_them(
        stage: Stage, notes: dict[str, dict[str, Any]]) -> None:
    """This test's own host (the cluster's bridge, not a server of the workspace)."""
    node1 = stage.nodes[0]
    with pytest.raises(TimeoutError):  # dropped, not refused
        socket.create_connection((node1["ip"], notes["postgres"]["port"]), timeout=3).close()
    shown = ok_json(dockyard("services", "info", "postgres", "-p", "notes", "--json",
                             env=stage.env))
    assert shown["container_state"] == "running"
    assert "********" in shown["url"]


def test_a_service_created_with_redeploy_reaches_the_apps_with_no_failed_request(
        stage: Stage, notes: dict[str, dict[str, Any]]) -> None:
    node1, node2, node3 = stage.nodes

    def create_and_wait() -> None:
        shown = ok(dockyard("services", "create", "postgres-analytics", "-p", "notes", "--kind",
                            "postgres", "--server", node3["name"], "--redeploy", env=stage.env,
                            timeout=300))
        assert "web: redeploying as deployment" in shown, shown
        for node in (node1, node2):
            wait_until(lambda node=node: "DATABASE_ANALYTICS_URL" in call(node, "GET", "/")
                       .json()["linked"], f"the app on {node['name']} given the new URL", 180)

    tally = under_strict_load(stage, HOST, create_and_wait, CONCURRENCY)
    print(f"stateful service + redeploy under a strict client (concurrency {CONCURRENCY}): "
          f"{tally.ok} ok, {tally.failed} failed {tally.errors}")
    assert tally.failed == 0, tally.errors
    assert tally.ok > 100


def test_killing_redis_logs_leaves_the_other_connections_working(
        stage: Stage, notes: dict[str, dict[str, Any]]) -> None:
    node1, node2, node3 = stage.nodes
    assert call(node2, "POST", "/log", "before").json() == {"length": 1}
    engine = docker.APIClient(base_url=stage.docker_socket(node3))
    engine.kill("notes-redis-logs-data")
    failed = call(node2, "POST", "/log", "while down")
    assert failed.status_code == 503, failed.text
    assert call(node2, "POST", "/notes/second", "still fine").status_code == 200
    assert call(node1, "GET", "/notes/second").json()["cache"] == "still fine"
    ok(dockyard("services", "start", "redis-logs", "-p", "notes", env=stage.env, timeout=300))
    wait_until(lambda: call(node2, "POST", "/log", "after").status_code == 200,
               "redis-logs answering again", 60)
    assert engine.inspect_container("notes-redis-logs-data")["State"]["Running"]
    engine.close()


def test_deleting_a_service_keeps_a_verified_final_backup_and_removes_its_data(
        stage: Stage, notes: dict[str, dict[str, Any]]) -> None:
    node3 = stage.nodes[2]
    refused = dockyard("services", "delete", "redis-cache", "-p", "other", "--confirm", "redis",
                       env=stage.env)
    assert refused.returncode != 0
    assert "--confirm redis-cache" in refused.stderr + refused.stdout
    ok(dockyard("services", "delete", "redis-cache", "-p", "other", "--confirm", "redis-cache",
                env=stage.env, timeout=300))
    [final] = ok_json(dockyard("backups", "list", "-p", "other", "redis-cache", "--json",
                               env=stage.env))
    assert (final["trigger"], final["status"]) == ("final", "good"), final
    engine = docker.APIClient(base_url=stage.docker_socket(node3))
    assert engine.containers(all=True, filters={"name": "other-redis-cache-data"}) == []
    assert "other-redis-cache-volume" not in {v["Name"] for v in engine.volumes()["Volumes"]}
    engine.close()
