"""The offline Redis and Postgres images: built with debootstrap, imported, and serving."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import docker
import pytest
import redis

from dockyard.agent.runtime import DockerRuntime
from dockyard.providers import images, local
from tests.agent.conftest import free_port, require_the_real_stack
from tests.live import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def docker_host() -> str:
    require_the_real_stack()
    return local.ensure_local_docker(images.ImageSettings().cache_dir)


@pytest.fixture
def run_image(docker_host: str) -> Iterator:  # type: ignore[type-arg]
    """Import a recipe's image and run it with its port published on a free loopback port."""
    client = docker.DockerClient(base_url=docker_host)
    started = []

    def run(recipe: str, port: int, env: dict[str, str]) -> int:
        tarball = images.bootstrap_tarball(images.RECIPES[recipe], images.ImageSettings())
        ref = images.import_tarball(DockerRuntime(docker_host), tarball)
        host_port = free_port()
        started.append(client.containers.run(
            ref.reference, detach=True, environment=env,
            ports={f"{port}/tcp": ("127.0.0.1", host_port)}))
        return host_port

    yield run
    for container in started:
        container.remove(force=True)
    client.close()


def _redis_answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def test_the_redis_image_serves(run_image) -> None:  # type: ignore[no-untyped-def]
    port = run_image("redis", 6379, {})
    wait_until(lambda: _redis_answers(port), "the redis container answers PING", timeout=60)
    client = redis.Redis(port=port)
    client.set("dockyard", "ok")
    assert client.get("dockyard") == b"ok"


def _postgres_answers(port: int) -> bool:
    async def query() -> int:
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres",
                                           password="s3cret-pw", database="postgres", timeout=2)
        try:
            return int(await connection.fetchval("SELECT 41 + 1"))
        finally:
            await connection.close()

    try:
        return asyncio.run(query()) == 42
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False


def test_the_postgres_image_serves_with_a_password(run_image) -> None:  # type: ignore[no-untyped-def]
    port = run_image("postgres", 5432, {"POSTGRES_PASSWORD": "s3cret-pw"})
    wait_until(lambda: _postgres_answers(port), "postgres accepts the password", timeout=120)
