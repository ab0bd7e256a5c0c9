"""Both backup stores through the same contract: the directory of the control plane and an
S3-compatible bucket (a local moto server); then what only one of them does."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from dockyard.core.backup_store import (
    PART_BYTES,
    BackupMissing,
    BackupStore,
    DirectoryStore,
    S3Store,
    store_for,
)
from dockyard.kernel.errors import InvalidInput
from dockyard.kernel.settings import Settings
from tests.backups.s3server import BUCKET, S3Server, start_s3_server
from tests.conftest import make_settings

_prefixes = iter(range(10**6))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def s3_settings(tmp_path: Path, server: S3Server) -> Settings:
    return make_settings(tmp_path, None, backups_s3_bucket=BUCKET,
                         backups_s3_endpoint_url=server.endpoint, backups_s3_region="us-east-1",
                         backups_s3_access_key="test", backups_s3_secret_key="test",
                         backups_s3_prefix=f"test-{next(_prefixes)}/")


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BackupStore:
    if request.param == "directory":
        return store_for(make_settings(tmp_path, None))
    return store_for(s3_settings(tmp_path, request.getfixturevalue("s3_server")))


async def stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def read(store: BackupStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in await store.get(key)])


async def failing_after(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise RuntimeError("the dump broke off")


async def test_put_get_exists_delete(store: BackupStore) -> None:
    key = "ws/project/db/backup-1"
    assert not await store.exists(key)
    stored = await store.put(key, stream(b"sealed ", b"bytes"))
    assert (stored.key, stored.size_bytes) == (key, 12)
    assert stored.sha256 == hashlib.sha256(b"sealed bytes").hexdigest()
    assert await store.exists(key)
    assert await read(store, key) == b"sealed bytes"
    await store.delete(key)
    assert not await store.exists(key)
    with pytest.raises(BackupMissing, match="stored backup 'ws/project/db/backup-1'"):
        await store.get(key)
    await store.delete(key)  # deleting what is gone is not an error


async def test_an_empty_object_and_a_replaced_one(store: BackupStore) -> None:
    assert (await store.put("a/empty", stream())).size_bytes == 0
    assert await read(store, "a/empty") == b""
    await store.put("a/b", stream(b"first"))
    await store.put("a/b", stream(b"second"))
    assert await read(store, "a/b") == b"second"


async def test_a_large_object_round_trips_in_parts(store: BackupStore) -> None:
    data = os.urandom(2 * PART_BYTES + 4096)
    pieces = [data[i:i + 100_000] for i in range(0, len(data), 100_000)]
    stored = await store.put("big/one", stream(*pieces))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size_bytes == len(data)
    assert await read(store, "big/one") == data


async def test_a_put_that_breaks_off_leaves_nothing_under_the_key(store: BackupStore) -> None:
    for size in (10, 2 * PART_BYTES):
        with pytest.raises(RuntimeError, match="broke off"):
            await store.put("ws/p/db/broken", failing_after(b"x" * size))
        assert not await store.exists("ws/p/db/broken")


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a/../../b", "a//b", "a/./b",
                                 "", "a\nb", "a/b/"])
async def test_keys_outside_the_store_are_refused(store: BackupStore, key: str) -> None:
    with pytest.raises(InvalidInput, match="not a backup key"):
        await store.put(key, stream(b"x"))
    with pytest.raises(InvalidInput):
        await store.exists(key)


def test_store_for_chooses_s3_only_when_a_bucket_is_set(tmp_path: Path) -> None:
    local = make_settings(tmp_path, None)
    directory = store_for(local)
    assert isinstance(directory, DirectoryStore)
    assert directory.root == tmp_path / "backups"
    elsewhere = make_settings(tmp_path, None, backups_dir=tmp_path / "elsewhere")
    assert store_for(elsewhere).root == tmp_path / "elsewhere"  # type: ignore[attr-defined]
    s3 = make_settings(tmp_path, None, backups_s3_bucket="my-bucket")
    assert isinstance(store_for(s3), S3Store)
    assert (store_for(local).kind, store_for(s3).kind) == ("local", "s3")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("backups_s3_bucket", "My_Bucket", "S3 bucket name"),
    ("backups_s3_bucket", "bucket\n", "S3 bucket name"),
    ("backups_s3_endpoint_url", "ftp://host", r"http\(s\)://host"),
    ("backups_s3_endpoint_url", "https://host/\n", r"http\(s\)://host"),
    ("backups_s3_prefix", "/abs/", "folders ending in '/'"),
    ("backups_s3_prefix", "no-slash", "folders ending in '/'"),
])
def test_s3_settings_are_checked_with_a_message(tmp_path: Path, field: str, value: str,
                                                message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_settings(tmp_path, None, **{field: value})


async def test_directory_objects_are_private_and_crash_leftovers_are_swept(
        tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "backups")
    await store.put("ws/p/db/1", stream(b"sealed"))
    path = store.path("ws/p/db/1")
    assert path.stat().st_mode & 0o077 == 0
    leftover = path.with_name(".2.abc.partial")
    leftover.write_bytes(b"half")
    fresh = path.with_name(".3.abc.partial")
    fresh.write_bytes(b"half")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    assert not await store.exists("ws/p/db/2")
    assert await store.sweep_unfinished(older_than=time.time() - 3600) == 1
    assert not leftover.exists()
    assert fresh.exists()  # perhaps still being written
    assert sorted(p.name for p in path.parent.iterdir()) == [".3.abc.partial", "1"]


async def test_s3_breaking_off_aborts_the_multipart_upload(tmp_path: Path,
                                                           s3_server: S3Server) -> None:
    settings = s3_settings(tmp_path, s3_server)
    store = store_for(settings)
    with pytest.raises(RuntimeError):
        await store.put("ws/broken", failing_after(b"y" * (2 * PART_BYTES)))
    uploads = s3_server.client().list_multipart_uploads(Bucket=BUCKET,
                                                        Prefix=settings.backups_s3_prefix)
    assert uploads.get("Uploads", []) == []


async def test_s3_objects_live_under_the_prefix(tmp_path: Path, s3_server: S3Server) -> None:
    settings = s3_settings(tmp_path, s3_server)
    await store_for(settings).put("ws/p/db/7", stream(b"z"))
    listing = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=settings.backups_s3_prefix)
    assert [o["Key"] for o in listing["Contents"]] == [settings.backups_s3_prefix + "ws/p/db/7"]


KILLED_PUT = """
import asyncio, sys
from dockyard.core.backup_store import store_for
from tests.conftest import make_settings
from pathlib import Path

async def dump():
    for _ in range(4000):  # 256 MiB at most, if the kill never came
        yield b"x" * 65536
        await asyncio.sleep(0.001)

settings = make_settings(Path(sys.argv[1]), None, **dict(a.split("=", 1) for a in sys.argv[2:]))
asyncio.run(store_for(settings).put("ws/p/db/killed", dump()))
"""


def start_killed_put(tmp_path: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", KILLED_PUT, str(tmp_path), *options],
                            cwd=Path(__file__).resolve().parents[2])


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, "the put ended before it was killed"
        assert time.monotonic() < deadline, "the put never got under way"
        time.sleep(0.01)


async def test_a_put_killed_mid_write_leaves_nothing_under_the_key(tmp_path: Path) -> None:
    process = start_killed_put(tmp_path)
    root = tmp_path / "backups"

    def partial_written() -> bool:
        return any(p.stat().st_size > 1024 * 1024 for p in root.rglob("*.partial"))

    wait_for(partial_written, process)
    process.kill()
    process.wait()
    store = DirectoryStore(root)
    assert not await store.exists("ws/p/db/killed")
    assert await store.sweep_unfinished(older_than=time.time() + 1) == 1
    assert list(root.rglob("*.partial")) == []


async def test_an_s3_put_killed_mid_upload_leaves_no_object(tmp_path: Path,
                                                             s3_server: S3Server) -> None:
    settings = s3_settings(tmp_path, s3_server)
    process = start_killed_put(
        tmp_path, f"backups_s3_bucket={BUCKET}", f"backups_s3_prefix={settings.backups_s3_prefix}",
        f"backups_s3_endpoint_url={s3_server.endpoint}", "backups_s3_region=us-east-1",
        "backups_s3_access_key=test", "backups_s3_secret_key=test")
    client, prefix = s3_server.client(), settings.backups_s3_prefix

    def part_uploaded() -> bool:
        uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
        return any(client.list_parts(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])
                   .get("Parts") for u in uploads)

    wait_for(part_uploaded, process)
    process.kill()
    process.wait()
    store = store_for(settings)
    assert not await store.exists("ws/p/db/killed")
    assert client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []) == []
    # moto dates every upload 2010-11-10, so only "older than now" can be shown here
    assert await store.sweep_unfinished(older_than=time.time() + 1) == 1
    assert client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []) == []
