"""The registry keeps exactly the kept release images: a real docker-registry (the program
Dockyard runs) on loopback, real pushes from this machine's Docker. Its garbage collection and
the pushes never overlap (issue 19): they hold the registry's lock exclusively and shared."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
from anyio import to_thread

from dockyard.core import image_prune, registry_gc
from dockyard.core.platform import Platform
from dockyard.core.registry_gc import Tagged
from dockyard.kernel import host_lock
from dockyard.providers import images, local, registry
from tests import sqlite_only
from tests.ports import free_port

pytestmark = pytest.mark.slow
database_url = sqlite_only.database_url  # the lock tests: the database only says what is kept
NAME = "ws/shop/web"


@pytest.fixture(scope="module")
def docker_api() -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=local.ensure_local_docker(images.ImageSettings().cache_dir))
    yield api
    api.close()


@pytest.fixture
def registry_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "registry"
    registry.ensure_registry(f"127.0.0.1:{free_port()}", root)
    yield root
    registry.stop_registry(root)


@pytest.fixture
def address(registry_root: Path) -> str:
    return (registry_root / "config.yml").read_text().split("addr: ")[1].strip()


@pytest.fixture
async def client(address: str) -> AsyncIterator[registry_gc.Registry]:
    found = registry_gc.Registry(address)
    yield found
    await found.aclose()


def push_release(api: docker.APIClient, address: str, tag: str) -> None:
    """A one-layer image of 256 KiB of its own, pushed as `NAME:tag`; no local copy kept."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY blob /blob\n"),
                           ("blob", os.urandom(256 * 1024))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    repository = f"{address}/{NAME}"
    built = list(api.build(fileobj=io.BytesIO(buffer.getvalue()), custom_context=True,
                           tag=f"{repository}:{tag}", rm=True, decode=True))
    assert any("Successfully tagged" in c.get("stream", "") for c in built), built
    pushed = list(api.push(repository, tag=tag, stream=True, decode=True))
    assert not [c for c in pushed if "error" in c], pushed
    api.remove_image(f"{repository}:{tag}")


def blob_bytes(root: Path) -> int:
    blobs = root / "data" / "docker" / "registry" / "v2" / "blobs"
    return sum(f.stat().st_size for f in blobs.rglob("*") if f.is_file())


async def test_the_registry_ends_with_the_kept_releases_and_smaller_blobs(
        docker_api: docker.APIClient, registry_root: Path, address: str,
        client: registry_gc.Registry) -> None:
    tags = [f"deploy_{n:08d}" for n in range(5)]
    for tag in tags:
        push_release(docker_api, address, tag)
    kept = {Tagged(NAME, tags[3]), Tagged(NAME, tags[4])}
    before = blob_bytes(registry_root)

    dropped = await registry_gc.drop_unkept(client, kept)
    result = await registry_gc.collect_garbage(str(registry_root / "config.yml"))

    assert result.ok, result.output
    assert sorted(dropped, key=lambda t: t.tag) == [Tagged(NAME, t) for t in tags[:3]]
    assert set(await client.release_tags()) == kept
    assert before - blob_bytes(registry_root) >= 3 * 256 * 1024
    for image in kept:  # their manifests and blobs are whole
        docker_api.pull(f"{address}/{image.name}", tag=image.tag)
        docker_api.remove_image(f"{address}/{image.name}:{image.tag}")
    push_release(docker_api, address, "deploy_00000005")  # a push right after collection
    docker_api.pull(f"{address}/{NAME}", tag="deploy_00000005")
    docker_api.remove_image(f"{address}/{NAME}:deploy_00000005")


async def test_a_tag_that_shares_a_kept_manifest_keeps_it(
        docker_api: docker.APIClient, address: str, client: registry_gc.Registry) -> None:
    push_release(docker_api, address, "deploy_00000001")
    docker_api.pull(f"{address}/{NAME}", tag="deploy_00000001")
    docker_api.tag(f"{address}/{NAME}:deploy_00000001", f"{address}/{NAME}", "deploy_00000002")
    list(docker_api.push(f"{address}/{NAME}", tag="deploy_00000002", stream=True))
    for tag in ("deploy_00000001", "deploy_00000002"):
        docker_api.remove_image(f"{address}/{NAME}:{tag}")

    first, second = Tagged(NAME, "deploy_00000001"), Tagged(NAME, "deploy_00000002")
    assert await client.digest(first) == await client.digest(second)

    await registry_gc.drop_unkept(client, {second})

    docker_api.pull(f"{address}/{NAME}", tag="deploy_00000002")
    docker_api.remove_image(f"{address}/{NAME}:deploy_00000002")


def prune_this_registry(platform: Platform, registry_root: Path, address: str) -> Path:
    """The platform's registry is the test's; the path of its lock."""
    platform.settings = platform.settings.model_copy(update={
        "registry": address, "registry_config": registry_root / "config.yml"})
    return platform.settings.data_dir / host_lock.REGISTRY_LOCK


def held_exclusively(lock: Path) -> bool:
    with lock.open("a") as handle:  # closing it lets go of a shared lock taken here
        return not host_lock.try_lock(handle.fileno(), shared=True)


async def until_collecting(lock: Path, collection: asyncio.Task[image_prune.RegistryPruned]
                           ) -> None:
    async with asyncio.timeout(30):
        while not held_exclusively(lock):
            assert not collection.done(), "the collection ended before it was seen holding"
            await asyncio.sleep(0.001)


async def push_holding_the_lock(lock: Path, api: docker.APIClient, address: str, tag: str
                                ) -> bool:
    """Push as a deploy does (deploy/build.py); whether it had to wait for the lock."""
    waited = asyncio.Event()

    async def say() -> None:
        waited.set()

    async with host_lock.held(lock, 0.01, shared=True, notice=host_lock.Notice(0, say)):
        await to_thread.run_sync(push_release, api, address, tag)
    return waited.is_set()


async def test_a_push_asked_during_the_collection_waits_then_its_image_is_whole(
        platform: Platform, docker_api: docker.APIClient, registry_root: Path, address: str,
        client: registry_gc.Registry) -> None:
    lock = prune_this_registry(platform, registry_root, address)
    for n in range(4):  # no deployment keeps them: all go
        push_release(docker_api, address, f"deploy_{n:08d}")
    collection = asyncio.create_task(image_prune.prune_registry(platform))
    await until_collecting(lock, collection)

    assert await push_holding_the_lock(lock, docker_api, address, "deploy_00000009")

    assert collection.done()
    pruned = collection.result()
    assert pruned.collected
    assert len(pruned.dropped) == 4
    assert await client.release_tags() == [Tagged(NAME, "deploy_00000009")]
    docker_api.pull(f"{address}/{NAME}", tag="deploy_00000009")  # every blob is there
    docker_api.remove_image(f"{address}/{NAME}:deploy_00000009")


async def test_a_collection_asked_during_a_push_waits_for_it_to_end(
        platform: Platform, docker_api: docker.APIClient, registry_root: Path, address: str,
        client: registry_gc.Registry) -> None:
    lock = prune_this_registry(platform, registry_root, address)
    for n in range(3):
        push_release(docker_api, address, f"deploy_{n:08d}")
    async with host_lock.held(lock, 0.01, shared=True):  # a deploy's push is under way
        collection = asyncio.create_task(image_prune.prune_registry(platform))
        await to_thread.run_sync(push_release, docker_api, address, "latest")
        assert not collection.done()
        assert len(await client.release_tags()) == 3  # not one manifest deleted meanwhile

    pruned = await asyncio.wait_for(collection, 120)
    assert pruned.collected
    assert len(pruned.dropped) == 3
    docker_api.pull(f"{address}/{NAME}", tag="latest")  # every blob of the push is there
    docker_api.remove_image(f"{address}/{NAME}:latest")
