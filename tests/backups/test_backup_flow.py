"""Backups through the API against a real agent app on this machine's Docker, with the
offline Postgres and Redis images: taken, verified in a scratch container, restored into a
new service and compared; a corrupted backup refused; a dead backup swept."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import docker
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select, update

from dockyard.agent.models import ContainerSpec, ImageRef
from dockyard.core import backup_restore, backups
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.settings import Settings
from dockyard.models.backup_schemas import BackupRestore
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.stateful import Backup
from dockyard.models.tables import ServerEvent, Service
from tests.backups.s3server import BUCKET, S3Server, start_s3_server
from tests.conftest import make_settings
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

pytestmark = pytest.mark.slow
STATEFUL = "/api/v1/projects/bk/stateful"
PREFIXES = ("bk-", "scratch-")


@pytest.fixture(scope="module")
def docker_host() -> str:
    return docker_with_stateful_images()


@pytest.fixture
def docker_api(docker_host: str) -> Iterator[docker.APIClient]:
    """Whatever a test leaves of project bk (services, scratch containers, volumes) goes."""
    api = docker.APIClient(base_url=docker_host)
    yield api
    api.close()
    remove_leftovers(docker_host, PREFIXES)


@pytest.fixture
def agent(docker_host: str, tmp_path: Path, docker_api: docker.APIClient
          ) -> Iterator[httpx.ASGITransport]:
    with firewall_namespace("dybk") as namespace:
        yield agent_on_this_docker(tmp_path / "agent", docker_host, namespace)


@pytest.fixture
def runner(platform: Platform, settings: Settings, agent: httpx.ASGITransport) -> DeployRunner:
    return runner_reaching(platform, settings, agent)


@pytest.fixture
async def api(settings: Settings, platform: Platform, runner: DeployRunner
              ) -> AsyncIterator[httpx.AsyncClient]:
    async with api_using(settings, platform, runner) as http:
        yield http


@pytest.fixture
async def bk(api: httpx.AsyncClient, owner: Any, platform: Platform) -> Any:
    return await project_on_one_server(api, owner, platform, "bk")


async def create(api: httpx.AsyncClient, owner: Any, name: str, kind: str) -> str:
    """The service's URL with its password, as this machine reaches it."""
    made = await api.post(STATEFUL, json={"name": name, "kind": kind}, headers=owner.headers)
    assert made.status_code == 201, made.text
    return await url_of(api, owner, name)


async def url_of(api: httpx.AsyncClient, owner: Any, name: str) -> str:
    shown = await api.get(f"{STATEFUL}/{name}", params={"show_secret": "true"},
                          headers=owner.headers)
    assert shown.status_code == 200, shown.text
    parts = urlsplit(shown.json()["url"])
    netloc = f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{shown.json()['port']}"
    return parts._replace(netloc=netloc).geturl()


async def sql(url: str, *statements: str) -> list[Any]:
    connection = await asyncpg.connect(url)
    try:
        return [await connection.fetch(statement) for statement in statements]
    finally:
        await connection.close()


CONTENT = ("SELECT id, name, note FROM items ORDER BY id",
           "SELECT count(*) FROM empty_one", "SELECT n FROM \"Odd Name\" ORDER BY n")


def scratch_left(api: docker.APIClient) -> list[str]:
    found = api.containers(all=True, filters={"label": "dockyard.scratch=true"})
    return [c["Names"][0] for c in found if c["Labels"]["dockyard.service"].startswith(PREFIXES)]


async def test_a_postgres_backup_is_verified_and_restores_into_a_new_service(
        api: httpx.AsyncClient, bk: Any, docker_api: docker.APIClient) -> None:
    url = await create(api, bk, "db", "postgres")
    await sql(url, "CREATE TABLE items (id serial PRIMARY KEY, name text, note text)",
              "INSERT INTO items (name, note) SELECT 'item ' || n, E'two\\nlines\\t' || n "
              "FROM generate_series(1, 500) n",
              "CREATE TABLE empty_one (x int)", "CREATE TABLE \"Odd Name\" (n int)",
              "INSERT INTO \"Odd Name\" VALUES (1), (2)")
    before = await sql(url, *CONTENT)
    taken = await api.post(f"{STATEFUL}/db/backups", json={}, headers=bk.headers)
    assert taken.status_code == 201, taken.text
    backup = taken.json()
    assert (backup["status"], backup["trigger"], backup["error"]) == ("good", "manual", "")
    assert backup["verification"] == "3 tables, 502 rows restored and matching the dump"
    assert backup["size_bytes"] > 0
    assert len(backup["sha256"]) == 64
    assert backup["duration_seconds"] > 0
    assert scratch_left(docker_api) == []

    await sql(url, "DELETE FROM items WHERE id > 10", "INSERT INTO empty_one VALUES (1)")
    restored = await api.post(f"{STATEFUL}/db/backups/{backup['id'][:8]}/restore", json={},
                              headers=bk.headers)
    assert restored.status_code == 200, restored.text
    name = f"db-restored-{date.today():%Y%m%d}"
    assert restored.json() == {"backup": backup["id"], "service": name,
                               "overwritten": False, "safety_backup": None}
    assert await sql(await url_of(api, bk, name), *CONTENT) == before
    assert (await sql(url, "SELECT count(*) FROM items"))[0][0][0] == 10  # untouched

    listed = await api.get(f"{STATEFUL}/db/backups", headers=bk.headers)
    assert [b["id"] for b in listed.json()] == [backup["id"]]


@SQLITE_ONLY
async def test_overwriting_needs_the_name_again_and_takes_a_safety_backup_first(
        api: httpx.AsyncClient, bk: Any) -> None:
    url = await create(api, bk, "db", "postgres")
    await sql(url, "CREATE TABLE items (id int)", "INSERT INTO items VALUES (1), (2)")
    backup = (await api.post(f"{STATEFUL}/db/backups", json={}, headers=bk.headers)).json()
    await sql(url, "INSERT INTO items VALUES (3)", "CREATE TABLE later (x int)")
    path = f"{STATEFUL}/db/backups/{backup['id']}/restore"
    refused = await api.post(path, json={"overwrite": True, "confirm": "d"}, headers=bk.headers)
    assert refused.status_code == 422, refused.text
    assert "--confirm db" in refused.json()["detail"]
    done = await api.post(path, json={"overwrite": True, "confirm": "db"}, headers=bk.headers)
    assert done.status_code == 200, done.text
    assert done.json()["overwritten"] is True
    assert [r["id"] for r in (await sql(url, "SELECT id FROM items ORDER BY id"))[0]] == [1, 2]
    listed = (await api.get(f"{STATEFUL}/db/backups", headers=bk.headers)).json()
    safety = next(b for b in listed if b["id"] == done.json()["safety_backup"])
    assert (safety["trigger"], safety["status"]) == ("safety", "good")
    assert safety["verification"] == "2 tables, 3 rows restored and matching the dump"


@SQLITE_ONLY
async def test_a_redis_backup_keeps_its_keys_through_a_restore(
        api: httpx.AsyncClient, bk: Any, docker_api: docker.APIClient) -> None:
    url = await create(api, bk, "redis", "redis")
    client = aioredis.from_url(url)
    try:
        await client.mset({f"key:{n}": f"value {n}" for n in range(300)})
        taken = await api.post(f"{STATEFUL}/redis/backups", json={}, headers=bk.headers)
        assert taken.status_code == 201, taken.text
        assert taken.json()["verification"] == "300 keys restored, as many as the source held"
        await client.flushall()
    finally:
        await client.aclose()
    restored = await api.post(f"{STATEFUL}/redis/backups/{taken.json()['id']}/restore",
                              json={"into": "redis-copy"}, headers=bk.headers)
    assert restored.status_code == 200, restored.text
    copy = aioredis.from_url(await url_of(api, bk, "redis-copy"))
    try:
        assert await copy.dbsize() == 300
        assert await copy.get("key:7") == b"value 7"
        assert await copy.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        await copy.aclose()
    assert scratch_left(docker_api) == []


@SQLITE_ONLY
async def test_a_corrupted_backup_is_refused_and_nothing_is_created(
        api: httpx.AsyncClient, bk: Any, platform: Platform) -> None:
    url = await create(api, bk, "db", "postgres")
    await sql(url, "CREATE TABLE items (id int)", "INSERT INTO items VALUES (1)")
    backup = (await api.post(f"{STATEFUL}/db/backups", json={}, headers=bk.headers)).json()
    await corrupt(platform, backup["id"])
    refused = await api.post(f"{STATEFUL}/db/backups/{backup['id']}/restore", json={},
                             headers=bk.headers)
    assert refused.status_code == 409, refused.text
    assert "does not authenticate: the file is damaged" in refused.json()["detail"]
    services = await api.get("/api/v1/projects/bk/services", headers=bk.headers)
    assert [s["name"] for s in services.json()] == ["db"]


async def corrupt(platform: Platform, backup_id: str) -> None:
    """Flip one byte in the middle of the stored file."""
    backup = await platform.db.read(lambda s: s.get_one(Backup, backup_id))
    store = backups.store_for(platform.settings)
    data = bytearray(b"".join([c async for c in await store.get(backup.location)]))
    data[len(data) // 2] ^= 0xFF

    async def chunks() -> AsyncIterator[bytes]:
        yield bytes(data)

    await store.put(backup.location, chunks())


@SQLITE_ONLY
async def test_a_failed_verification_marks_the_backup_failed_with_an_alert(
        api: httpx.AsyncClient, bk: Any, platform: Platform, monkeypatch: Any) -> None:
    url = await create(api, bk, "db", "postgres")
    await sql(url, "CREATE TABLE items (id int)")
    real = backups.store_for(platform.settings)

    class Corrupting:  # the storage damages what it is given
        async def put(self, key: str, chunks: AsyncIterator[bytes]) -> Any:
            data = b"".join([c async for c in chunks])

            async def damaged() -> AsyncIterator[bytes]:
                yield data[:-7] + b"garbage"

            return await real.put(key, damaged())

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(backups, "store_for", lambda settings: Corrupting())
    failed = await api.post(f"{STATEFUL}/db/backups", json={}, headers=bk.headers)
    assert failed.status_code == 502, failed.text
    listed = (await api.get(f"{STATEFUL}/db/backups", headers=bk.headers)).json()
    assert [b["status"] for b in listed] == ["failed"]
    assert listed[0]["error"] in failed.json()["detail"]
    alerts = await platform.db.read(lambda s: s.scalars(select(ServerEvent.message).where(
        ServerEvent.kind == "backup_failed")))
    assert [m for m in alerts] == [f"backup {listed[0]['id']} of db failed: {listed[0]['error']}"]


async def test_the_sweep_fails_dead_backups_and_removes_their_scratch_containers(
        api: httpx.AsyncClient, bk: Any, platform: Platform, runner: DeployRunner,
        docker_api: docker.APIClient) -> None:
    await create(api, bk, "db", "postgres")
    rows = await platform.db.read(lambda s: s.scalars(select(Backup)))
    assert list(rows) == []
    dead, live = await running_backups(platform, bk.workspace_id, ages=(600, 5))
    store = backups.store_for(platform.settings)
    for backup_id in (dead, live):  # each had stored its file when its process died
        await store.put(f"partial/{backup_id}", one_chunk(b"sealed bytes"))
        await platform.db.write(lambda s, b=backup_id: s.execute(
            update(Backup).where(Backup.id == b).values(location=f"partial/{b}")))
    async with await runner.connect(None) as client:  # type: ignore[arg-type]
        for backup_id in (dead, live):
            await client.run_container(scratch(backup_id))
    done = await backups.sweep(platform, runner.connect)
    assert done == [f"backup {dead} marked failed: its control plane stopped",
                    f"scratch container bk-db-scratch-{dead[:12]} removed from node1"]
    assert scratch_left(docker_api) == [f"/bk-db-scratch-{live[:12]}"]
    statuses = await platform.db.read(lambda s: s.execute(select(Backup.id, Backup.status)))
    assert dict(list(statuses)) == {dead: "failed", live: "running"}  # type: ignore[arg-type]
    assert (await store.exists(f"partial/{dead}"), await store.exists(f"partial/{live}")) == (
        False, True)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def scratch(backup_id: str) -> ContainerSpec:
    return ContainerSpec(name=f"bk-db-scratch-{backup_id[:12]}",
                         service=f"scratch-{backup_id[:16]}",
                         image=ImageRef(repository="dockyard/postgres", tag="bookworm"),
                         command=["sleep", "600"],
                         labels={"dockyard.scratch": "true", "dockyard.backup": backup_id})


async def running_backups(platform: Platform, workspace_id: str, ages: tuple[int, ...]
                          ) -> list[str]:
    """Backups left running, their last heartbeat `ages` seconds ago."""
    async def tx(s: Any) -> list[str]:
        db = await s.scalar(select(Service).where(Service.name == "db"))
        made = [Backup(workspace_id=workspace_id, project_id=db.project_id,
                       service_id=db.id, service_name="db", kind=db.kind,
                       status="running", started_at=utcnow() - timedelta(seconds=age),
                       heartbeat_at=utcnow() - timedelta(seconds=age)) for age in ages]
        s.add_all(made)
        await s.flush()
        return [b.id for b in made]

    return await platform.db.write(tx)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@SQLITE_ONLY
async def test_a_backup_to_s3_compatible_storage_is_verified_and_restored(
        api: httpx.AsyncClient, bk: Any, platform: Platform, runner: DeployRunner,
        s3_server: S3Server, tmp_path: Path) -> None:
    url = await create(api, bk, "db", "postgres")
    await sql(url, "CREATE TABLE items (id int)", "INSERT INTO items SELECT generate_series(1, 50)")
    prefix = f"flow-{secrets.token_hex(4)}/"  # the server outlives this test
    settings = make_settings(tmp_path, platform.settings.database_url, backups_s3_bucket=BUCKET,
                             backups_s3_endpoint_url=s3_server.endpoint,
                             backups_s3_region="us-east-1", backups_s3_access_key="test",
                             backups_s3_secret_key="test", backups_s3_prefix=prefix)
    on_s3 = Platform(settings=settings, db=platform.db, keys=platform.keys, box=platform.box)
    owner = bk.actor(Role.OWNER)
    backup = await backups.create_backup(on_s3, runner, owner, "bk", "db")
    assert (backup.status, backup.storage) == ("good", "s3")
    assert backup.verification == "1 tables, 50 rows restored and matching the dump"
    row = await platform.db.read(lambda s: s.get_one(Backup, backup.id))
    listing = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [
        (f"{prefix}{row.location}", backup.size_bytes)]
    await backup_restore.restore_backup(on_s3, runner, owner, "bk", "db", backup.id,
                                        BackupRestore(into="db-from-s3"))
    copy = await url_of(api, bk, "db-from-s3")
    assert (await sql(copy, "SELECT count(*) FROM items"))[0][0][0] == 50



@SQLITE_ONLY
async def test_a_redis_restored_over_itself_has_the_backup_keys_only_and_keeps_its_aof(
        api: httpx.AsyncClient, bk: Any, docker_api: docker.APIClient) -> None:
    url = await create(api, bk, "redis", "redis")
    client = aioredis.from_url(url)
    try:
        await client.mset({"kept": "1", "changed": "before"})
        backup = (await api.post(f"{STATEFUL}/redis/backups", json={},
                                 headers=bk.headers)).json()
        await client.mset({"changed": "after", "added": "later"})
    finally:
        await client.aclose()
    done = await api.post(f"{STATEFUL}/redis/backups/{backup['id']}/restore",
                          json={"overwrite": True, "confirm": "redis"}, headers=bk.headers)
    assert done.status_code == 200, done.text
    client = aioredis.from_url(await url_of(api, bk, "redis"))
    try:
        assert sorted(await client.keys()) == [b"changed", b"kept"]
        assert await client.get("changed") == b"before"
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        await client.aclose()
    assert scratch_left(docker_api) == []
    listed = (await api.get(f"{STATEFUL}/redis/backups", headers=bk.headers)).json()
    safety = next(b for b in listed if b["id"] == done.json()["safety_backup"])
    assert safety["verification"] == "3 keys restored, as many as the source held"


@SQLITE_ONLY
async def test_a_deleted_service_leaves_a_final_backup_that_restores(
        api: httpx.AsyncClient, bk: Any) -> None:
    url = await create(api, bk, "db", "postgres")
    await sql(url, "CREATE TABLE items (id int)", "INSERT INTO items VALUES (1), (2), (3)")
    gone = await api.delete(f"{STATEFUL}/db", params={"confirm": "db"}, headers=bk.headers)
    assert gone.status_code == 204, gone.text
    [final] = (await api.get(f"{STATEFUL}/db/backups", headers=bk.headers)).json()
    assert (final["trigger"], final["status"]) == ("final", "good")
    restored = await api.post(f"{STATEFUL}/db/backups/{final['id']}/restore",
                              json={"into": "db"}, headers=bk.headers)
    assert restored.status_code == 200, restored.text
    assert (await sql(await url_of(api, bk, "db"), "SELECT count(*) FROM items"))[0][0][0] == 3


@SQLITE_ONLY
async def test_a_stopped_service_is_not_backed_up_and_no_record_is_left(
        api: httpx.AsyncClient, bk: Any) -> None:
    await create(api, bk, "redis", "redis")
    stopped = await api.post(f"{STATEFUL}/redis/actions", json={"action": "stop"},
                             headers=bk.headers)
    assert stopped.status_code == 200, stopped.text
    refused = await api.post(f"{STATEFUL}/redis/backups", json={}, headers=bk.headers)
    assert refused.status_code == 409, refused.text
    assert "dockyard services start redis -p bk" in refused.json()["detail"]
    assert (await api.get(f"{STATEFUL}/redis/backups", headers=bk.headers)).json() == []
