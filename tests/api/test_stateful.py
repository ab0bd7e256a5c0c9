"""Stateful services through the API, against a real agent app on this machine's Docker: a
Postgres and a Redis created, reached with their generated passwords, stopped and started
with their data, refused when asked wrongly, and never half-recorded."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import docker
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from dockyard.core import stateful
from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.deploy.runner import DeployRunner
from dockyard.deploy.stateful import PORTS
from dockyard.kernel.settings import Settings
from dockyard.models.schemas import ServerPublic
from dockyard.models.stateful import StatefulInstance
from dockyard.models.tables import Server, Service
from dockyard.providers import images
from tests import sqlite_only
from tests.real_agent import (
    SQLITE_ONLY,
    agent_on_this_docker,
    api_using,
    docker_with_stateful_images,
    firewall_namespace,
    project_on_one_server,
    remove_leftovers,
    runner_reaching,
)

database_url = sqlite_only.database_url  # nothing here depends on the database kind

pytestmark = pytest.mark.slow
PROJECT = "/api/v1/projects/shop/stateful"


@pytest.fixture(scope="module")
def docker_host() -> str:
    return docker_with_stateful_images()


@pytest.fixture
def leftovers(docker_host: str) -> Iterator[None]:
    """Whatever a test leaves of projects shop and other on this Docker is removed."""
    yield
    remove_leftovers(docker_host, ("shop-", "other-"))


@pytest.fixture
def namespace() -> Iterator[str]:
    with firewall_namespace("dyst") as name:
        yield name


@pytest.fixture
def runner(settings: Settings, platform: Platform, docker_host: str, tmp_path: Path,
           leftovers: None, namespace: str) -> DeployRunner:
    """A deploy runner that reaches a real agent app (this machine's Docker) over ASGI for
    every server."""
    return runner_reaching(platform, settings,
                           agent_on_this_docker(tmp_path / "agent", docker_host, namespace))


@pytest.fixture
async def api(settings: Settings, platform: Platform, runner: DeployRunner
              ) -> AsyncIterator[httpx.AsyncClient]:
    async with api_using(settings, platform, runner) as http:
        yield http


@pytest.fixture
async def shop(api: httpx.AsyncClient, owner: Any, platform: Platform) -> Any:
    return await project_on_one_server(api, owner, platform, "shop")


async def secret_url(api: httpx.AsyncClient, owner: Any, name: str) -> str:
    answer = await api.get(f"{PROJECT}/{name}", params={"show_secret": "true"},
                           headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["url"])


def published(url: str, port: int) -> str:
    """The URL as this machine reaches it: the stable name is for apps (their /etc/hosts)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}").geturl()


async def test_a_postgres_runs_with_its_own_user_database_and_a_generated_password(
        api: httpx.AsyncClient, shop: Any) -> None:
    answer = await api.post(PROJECT, json={"name": "postgres-orders", "kind": "postgres"},
                            headers=shop.headers)
    assert answer.status_code == 201, answer.text
    found = answer.json()
    assert (found["variable"], found["server"], found["container_state"]) == (
        "DATABASE_ORDERS_URL", "node1", "running")
    assert found["hostname"] == "postgres-orders.shop.dockyard.internal"
    assert "********" in found["url"]
    assert found["version"].startswith("15")
    url = published(await secret_url(api, shop, "postgres-orders"), found["port"])
    connection = await asyncpg.connect(url)
    try:
        assert tuple(await connection.fetchrow("SELECT current_user, current_database()")) == (
            "postgres_orders", "postgres_orders")
        assert await connection.fetchval("SHOW server_encoding") == "UTF8"  # text is text
        await connection.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    finally:
        await connection.close()
    wrong = urlsplit(url)._replace(netloc=f"postgres_orders:guess@127.0.0.1:{found['port']}")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong.geturl())
    await restart_keeps(api, shop, url)


async def restart_keeps(api: httpx.AsyncClient, owner: Any, url: str) -> None:
    """stop, start and restart keep the data (the named volume)."""
    for action, state in (("stop", "missing"), ("start", "running"), ("restart", "running")):
        answer = await api.post(f"{PROJECT}/postgres-orders/actions", json={"action": action},
                                headers=owner.headers)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["container_state"], answer.json()["state"]) == (
            state, "stopped" if action == "stop" else "running")
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT n FROM kept") == 7
    finally:
        await connection.close()


@SQLITE_ONLY
async def test_a_redis_needs_its_password_and_keeps_an_append_only_file(
        api: httpx.AsyncClient, shop: Any) -> None:
    answer = await api.post(PROJECT, json={"name": "redis-logs", "kind": "redis",
                                           "memory_mb": 64}, headers=shop.headers)
    assert answer.status_code == 201, answer.text
    found = answer.json()
    assert (found["variable"], found["memory_mb"]) == ("REDIS_LOGS_URL", 64)
    url = published(await secret_url(api, shop, "redis-logs"), found["port"])
    client = aioredis.from_url(url)
    try:
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        await client.aclose()
    anonymous = aioredis.Redis(port=found["port"])
    try:
        with pytest.raises(aioredis.AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()


@SQLITE_ONLY
async def test_the_password_is_for_admins_who_ask_and_the_url_is_masked_otherwise(
        api: httpx.AsyncClient, shop: Any, platform: Platform) -> None:
    await api.post(PROJECT, json={"name": "redis", "kind": "redis"}, headers=shop.headers)
    shown = await api.get(f"{PROJECT}/redis", headers=shop.headers)
    instance = await platform.db.read(lambda s: s.scalar(select(StatefulInstance)))
    password = platform.box.decrypt(instance.password_ciphertext)
    assert password not in shown.text
    assert "redis://:********@" in shown.json()["url"]
    assert password in await secret_url(api, shop, "redis")


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"name": "cache", "kind": "mysql"}, 422, "postgres"),
    ({"name": "Redis", "kind": "redis"}, 422, "lowercase"),
    ({"name": "redis-", "kind": "redis"}, 422, "lowercase"),
    ({"name": "db", "kind": "postgres", "version": "15\n"}, 422, "version"),
    ({"name": "db", "kind": "postgres", "server": "nowhere"}, 404, "nowhere"),
    ({"name": "db", "kind": "postgres", "memory_mb": 1}, 422, "16"),
])
async def test_bad_requests_are_refused_and_record_nothing(
        api: httpx.AsyncClient, shop: Any, platform: Platform, body: dict[str, Any],
        status: int, says: str) -> None:
    answer = await api.post(PROJECT, json=body, headers=shop.headers)
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert await platform.db.read(lambda s: s.scalar(select(Service.id))) is None


@SQLITE_ONLY
async def test_a_service_that_cannot_start_says_why_and_leaves_no_record(
        api: httpx.AsyncClient, shop: Any, platform: Platform) -> None:
    answer = await api.post(PROJECT, json={"name": "db", "kind": "postgres",
                                           "image": "registry.invalid/postgres:16"},
                            headers=shop.headers)
    assert answer.status_code == 502, answer.text
    assert "could not pull registry.invalid/postgres:16" in answer.json()["detail"]
    assert await platform.db.read(lambda s: s.scalar(select(Service.id))) is None


@SQLITE_ONLY
async def test_two_services_cannot_claim_one_variable_and_names_are_unique(
        api: httpx.AsyncClient, shop: Any) -> None:
    first = await api.post(PROJECT, json={"name": "postgres", "kind": "postgres"},
                           headers=shop.headers)
    assert first.status_code == 201, first.text
    again = await api.post(PROJECT, json={"name": "postgres", "kind": "redis"},
                           headers=shop.headers)
    assert again.status_code == 409
    assert "already exists" in again.text
    clash = await api.post(PROJECT, json={"name": "database", "kind": "redis"},
                           headers=shop.headers)
    assert clash.status_code == 409
    assert "DATABASE_URL" in clash.text


@SQLITE_ONLY
async def test_delete_needs_the_name_again(api: httpx.AsyncClient, shop: Any,
                                          platform: Platform) -> None:
    await api.post(PROJECT, json={"name": "redis", "kind": "redis"}, headers=shop.headers)
    answer = await api.delete(f"{PROJECT}/redis", params={"confirm": "redi"},
                              headers=shop.headers)
    assert answer.status_code == 422
    assert "--confirm redis" in answer.text
    assert await platform.db.read(lambda s: s.scalar(select(StatefulInstance.port)))


async def test_project_links_name_every_stateful_service_of_the_project_only(
        api: httpx.AsyncClient, shop: Any, platform: Platform) -> None:
    await api.post("/api/v1/projects", json={"name": "other"}, headers=shop.headers)
    for project, name in (("shop", "redis"), ("other", "redis")):
        answer = await api.post(f"/api/v1/projects/{project}/stateful",
                                json={"name": name, "kind": "redis"}, headers=shop.headers)
        assert answer.status_code == 201, answer.text
    shop_id = await platform.db.read(lambda s: s.scalar(
        select(Service.project_id).join(StatefulInstance).order_by(Service.created_at)))
    links = await platform.db.read(lambda s: stateful.project_links(platform, s, shop_id))
    assert [(x.service, x.variable, x.hostname) for x in links] == [
        ("redis", "REDIS_URL", "redis.shop.dockyard.internal")]


@SQLITE_ONLY
async def test_the_plain_service_routes_send_stateful_kinds_to_their_own(
        api: httpx.AsyncClient, shop: Any, platform: Platform) -> None:
    made = await api.post("/api/v1/projects/shop/services", json={"name": "db",
                                                                   "kind": "postgres"},
                          headers=shop.headers)
    assert made.status_code == 422
    assert "--kind postgres" in made.text
    await api.post(PROJECT, json={"name": "redis", "kind": "redis"}, headers=shop.headers)
    gone = await api.delete("/api/v1/projects/shop/services/redis", headers=shop.headers)
    assert gone.status_code == 422
    assert "--confirm redis" in gone.text
    assert await platform.db.read(lambda s: s.scalar(select(StatefulInstance.port)))


@SQLITE_ONLY
async def test_a_port_something_else_holds_is_given_up_for_the_next(
        api: httpx.AsyncClient, shop: Any) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("0.0.0.0", PORTS.start))  # noqa: S104 - where Docker would publish it
        holder.listen()
    except OSError:
        pass  # held already by something else: just as good
    try:
        answer = await api.post(PROJECT, json={"name": "redis", "kind": "redis"},
                                headers=shop.headers)
    finally:
        holder.close()
    assert answer.status_code == 201, answer.text
    assert answer.json()["port"] > PORTS.start
    assert answer.json()["container_state"] == "running"
    assert answer.json()["volume_bytes"] > 0  # Redis's append-only file, at least


@SQLITE_ONLY
async def test_the_reconciler_puts_a_removed_service_back_and_lets_new_servers_in(
        api: httpx.AsyncClient, shop: Any, platform: Platform, runner: DeployRunner,
        docker_host: str) -> None:
    made = await api.post(PROJECT, json={"name": "redis", "kind": "redis"}, headers=shop.headers)
    assert made.status_code == 201, made.text
    docker.APIClient(base_url=docker_host).remove_container("shop-redis-data", force=True)
    await register_server(platform, shop.workspace_id, name="node2", provider="manual",
                          ip="10.9.8.7", agent_port=8421, agent_insecure_http=True)
    server = ServerPublic.model_validate(await platform.db.read(
        lambda s: s.scalar(select(Server).where(Server.name == "node1"))))
    async with await runner.connect(server) as client:
        assert await stateful.keep_stateful(platform, server, client) == [
            "started stateful service shop/redis again (it was missing)"]
        assert await stateful.keep_stateful(platform, server, client) == []
        [rule] = [r for r in await client.firewall_rules() if r.name == "shop-redis-data"]
    assert set(rule.allow) == {"127.0.0.1/32", "10.9.8.7/32"}
    info = await api.get(f"{PROJECT}/redis", headers=shop.headers)
    assert info.json()["container_state"] == "running"


@SQLITE_ONLY
async def test_the_reconciler_leaves_a_service_alone_while_it_is_created_or_stopped(
        api: httpx.AsyncClient, shop: Any, platform: Platform, runner: DeployRunner) -> None:
    """Passes of the reconciler all through a create and a stop: it neither starts the
    service before its image is there nor puts back the container a stop takes away (a
    create once failed with Docker's name conflict, the reconciler having made it first)."""
    server = ServerPublic.model_validate(await platform.db.read(
        lambda s: s.scalar(select(Server).where(Server.name == "node1"))))
    said: list[str] = []
    async with await runner.connect(server) as client:
        async def reconciling_through(request: Any) -> httpx.Response:
            task = asyncio.create_task(request)
            while not task.done():
                said.extend(await stateful.keep_stateful(platform, server, client))
            return await task

        made = await reconciling_through(api.post(
            PROJECT, json={"name": "redis", "kind": "redis"}, headers=shop.headers))
        assert made.status_code == 201, made.text
        assert made.json()["state"] == "running"
        stopped = await reconciling_through(api.post(
            f"{PROJECT}/redis/actions", json={"action": "stop"}, headers=shop.headers))
        assert stopped.json()["state"] == "stopped", stopped.text
        assert stopped.json()["container_state"] == "missing"
    assert said == []


@SQLITE_ONLY
async def test_a_container_that_cannot_run_leaves_nothing_on_the_server(
        api: httpx.AsyncClient, shop: Any, platform: Platform, docker_host: str) -> None:
    postgres = images.cached_tarball(images.RECIPES["postgres"], images.ImageSettings())
    image = f"dockyard/postgres:{postgres.path.stem.removeprefix('postgres-')}"
    answer = await api.post(PROJECT, json={"name": "redis", "kind": "redis", "image": image},
                            headers=shop.headers)  # a Redis on the Postgres image: no redis-server
    assert answer.status_code == 502, answer.text
    assert "redis-server" in answer.json()["detail"]
    assert await platform.db.read(lambda s: s.scalar(select(Service.id))) is None
    engine = docker.APIClient(base_url=docker_host)
    assert engine.containers(all=True, filters={"name": "shop-redis-data"}) == []
    assert [v for v in engine.volumes()["Volumes"] or [] if v["Name"] == "shop-redis-volume"] == []
    engine.close()


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_rekey_gives_a_new_password_the_old_one_stops_working_and_data_stays(
        api: httpx.AsyncClient, shop: Any, kind: str) -> None:
    made = await api.post(PROJECT, json={"name": kind, "kind": kind}, headers=shop.headers)
    assert made.status_code == 201, made.text
    port = made.json()["port"]
    before = published(await secret_url(api, shop, kind), port)
    await remember(kind, before, "kept")
    answer = await api.post(f"{PROJECT}/{kind}/rekey", headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["container_state"], answer.json()["redeploys"]) == ("running", [])
    after = published(await secret_url(api, shop, kind), port)
    assert after != before
    assert await recall(kind, after) == "kept"
    with pytest.raises((asyncpg.InvalidPasswordError, aioredis.AuthenticationError)):
        await recall(kind, before)


async def remember(kind: str, url: str, value: str) -> None:
    if kind == "redis":
        async with aioredis.from_url(url) as client:
            await client.set("kept", value)
            await client.execute_command("BGREWRITEAOF")
        return
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"CREATE TABLE kept AS SELECT '{value}'::text AS v")
    finally:
        await connection.close()


async def recall(kind: str, url: str) -> str:
    if kind == "redis":
        async with aioredis.from_url(url) as client:
            found = await client.get("kept")
            return found.decode() if found else ""
    connection = await asyncpg.connect(url)
    try:
        return str(await connection.fetchval("SELECT v FROM kept"))
    finally:
        await connection.close()


@SQLITE_ONLY
async def test_a_stopped_service_is_started_for_its_final_backup_then_deleted(
        api: httpx.AsyncClient, shop: Any, platform: Platform, docker_host: str) -> None:
    await api.post(PROJECT, json={"name": "redis", "kind": "redis"}, headers=shop.headers)
    stopped = await api.post(f"{PROJECT}/redis/actions", json={"action": "stop"},
                             headers=shop.headers)
    assert stopped.json()["container_state"] == "missing"
    gone = await api.delete(f"{PROJECT}/redis", params={"confirm": "redis"},
                            headers=shop.headers)
    assert gone.status_code == 204, gone.text
    backups = await api.get(f"{PROJECT}/redis/backups", headers=shop.headers)
    assert [(b["trigger"], b["status"]) for b in backups.json()] == [("final", "good")]
    assert await platform.db.read(lambda s: s.scalar(select(Service.id))) is None
    engine = docker.APIClient(base_url=docker_host)
    assert engine.containers(all=True, filters={"name": "shop-redis-data"}) == []
    engine.close()


@SQLITE_ONLY
async def test_a_create_the_control_plane_did_not_finish_is_finished_by_start_or_deleted(
        api: httpx.AsyncClient, shop: Any, platform: Platform, docker_host: str) -> None:
    """Killed mid-create, a service stays `starting` (the reconciler leaves it alone)."""
    async def abandoned() -> None:
        async def tx(s: Any) -> None:
            (await s.scalar(select(StatefulInstance))).state = "starting"

        await platform.db.write(tx)
        docker.APIClient(base_url=docker_host).remove_container("shop-redis-data", force=True)

    await api.post(PROJECT, json={"name": "redis", "kind": "redis"}, headers=shop.headers)
    await abandoned()
    assert (await api.get(f"{PROJECT}/redis", headers=shop.headers)).json()["state"] == "starting"
    started = await api.post(f"{PROJECT}/redis/actions", json={"action": "start"},
                             headers=shop.headers)
    assert (started.json()["state"], started.json()["container_state"]) == ("running", "running")
    await abandoned()
    gone = await api.delete(f"{PROJECT}/redis", params={"confirm": "redis"},
                            headers=shop.headers)
    assert gone.status_code == 204, gone.text
    assert await platform.db.read(lambda s: s.scalar(select(Service.id))) is None
