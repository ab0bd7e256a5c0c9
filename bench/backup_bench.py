"""Throughput of the backup path without a database: sealing and unsealing (zlib, then
AES-256-GCM per chunk) and storing and reading back, in the control plane's directory and in
an S3-compatible server (moto's, started here: none is reachable from this machine). The
data is half random, half text-like, like a dump. Prints the figures; asserts nothing.

    .venv/bin/python bench/backup_bench.py [--mb 100] [--level 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.backups.s3server import BUCKET, start_s3_server  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

from dockyard.core.backup_seal import backup_key, seal, unseal  # noqa: E402
from dockyard.core.backup_store import BackupStore, store_for  # noqa: E402

BLOCK = 1024 * 1024
KEY = backup_key(os.urandom(32), "bench")


def dump_like(megabytes: int) -> list[bytes]:
    """Blocks of 1 MiB: every other one random (incompressible), the rest repetitive rows."""
    rows = b"".join(b"%d\tcustomer-%d\t2026-12-02 10:00:00\t%d.50\n" % (i, i, i % 997)
                    for i in range(40_000))[:BLOCK]
    return [os.urandom(BLOCK) if i % 2 else rows for i in range(megabytes)]


async def stream(blocks: list[bytes]) -> AsyncIterator[bytes]:
    for block in blocks:
        yield block


async def drain(chunks: AsyncIterator[bytes]) -> int:
    return sum([len(chunk) async for chunk in chunks])


async def timed(what: str, megabytes: int, work: Awaitable[object]) -> object:
    started = time.monotonic()
    result = await work
    seconds = time.monotonic() - started
    print(f"{what:<34} {seconds:7.2f} s  {megabytes / seconds:8.1f} MB/s")
    return result


async def bench_store(name: str, store: BackupStore, sealed: list[bytes], mb: int) -> None:
    stored = await timed(f"{name}: put (sealed)", mb, store.put("bench/one", stream(sealed)))
    await timed(f"{name}: get", mb, drain_get(store))
    await timed(f"{name}: get + unseal", mb, drain_unsealed(store))
    print(f"{'':<34} stored {getattr(stored, 'size_bytes', 0) / BLOCK:.1f} MiB")
    await store.delete("bench/one")


async def drain_get(store: BackupStore) -> int:
    return await drain(await store.get("bench/one"))


async def drain_unsealed(store: BackupStore) -> int:
    return await drain(unseal(await store.get("bench/one"), KEY))


async def main(mb: int, level: int) -> None:
    blocks = dump_like(mb)
    sealed: list[bytes] = []

    async def seal_all() -> None:
        sealed.extend([chunk async for chunk in seal(stream(blocks), KEY, level)])

    await timed(f"seal {mb} MB (zlib level {level})", mb, seal_all())
    await timed("unseal", mb, drain(unseal(stream(sealed), KEY)))
    with tempfile.TemporaryDirectory(prefix="dockyard-backup-bench-") as directory:
        work = Path(directory)
        await bench_store("directory", store_for(make_settings(work, None)), sealed, mb)
        s3 = start_s3_server(work / "moto.log")
        try:
            s3.client().create_bucket(Bucket=BUCKET)
            settings = make_settings(
                work, None, backups_s3_bucket=BUCKET, backups_s3_endpoint_url=s3.endpoint,
                backups_s3_region="us-east-1", backups_s3_access_key="bench",
                backups_s3_secret_key="bench")  # noqa: S106 (moto accepts any)
            await bench_store("s3 (moto, loopback)", store_for(settings), sealed, mb)
        finally:
            s3.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--level", type=int, default=6, choices=range(0, 10))
    arguments = parser.parse_args()
    asyncio.run(main(arguments.mb, arguments.level))
