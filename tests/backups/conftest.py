"""Until part D's store lands: an in-memory stand-in with its interface (tests only)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str


class MemoryStore:
    objects: dict[str, bytes] = {}

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> StoredObject:
        data = b"".join([c async for c in chunks])
        self.objects[key] = data
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    async def get(self, key: str) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield self.objects[key]
        return chunks()

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)


async def seal(chunks: AsyncIterator[bytes], key: bytes) -> AsyncIterator[bytes]:
    data = b"".join([c async for c in chunks])
    yield hashlib.sha256(key + data).digest() + zlib.compress(data)


async def unseal(chunks: AsyncIterator[bytes], key: bytes) -> AsyncIterator[bytes]:
    sealed = b"".join([c async for c in chunks])
    data = zlib.decompress(sealed[32:])
    if hashlib.sha256(key + data).digest() != sealed[:32]:
        raise ValueError("tampered")
    yield data


def store_for(settings: Any) -> MemoryStore:
    return MemoryStore()


if importlib.util.find_spec("dockyard.core.backup_store") is None:
    stand_in = types.ModuleType("dockyard.core.backup_store")
    stand_in.__dict__.update(BackupStore=MemoryStore, StoredObject=StoredObject, seal=seal,
                             unseal=unseal, store_for=store_for)
    sys.modules["dockyard.core.backup_store"] = stand_in
