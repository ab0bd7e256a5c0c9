"""Where sealed backups are kept: a directory of the control plane (the default) or any
S3-compatible bucket (AWS S3, DigitalOcean Spaces, MinIO), behind one interface:

    store = store_for(p.settings)                       # store.kind: "local" | "s3"
    stored = await store.put(key, seal(dump_chunks, backup_key(p.keys.secrets, workspace)))
    async for plain in unseal(await store.get(key), same_key): ...
    await store.delete(key); await store.exists(key)

Keys are relative paths ('workspace/project/service/backup-id'). An object appears under its
key only once it is whole (a temporary file renamed; a multipart upload completed), so a
crash leaves nothing under the final key. `get` does not check the sha256: `put` returns it
(StoredObject), the caller keeps it and compares it to the bytes it reads, and `unseal`
authenticates every chunk anyway. `get` raises BackupMissing (404) if there is no object."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

from dockyard.core.backup_seal import BackupCorrupted, backup_key, seal, unseal
from dockyard.kernel.errors import InvalidInput, NotFound
from dockyard.kernel.settings import Settings
from dockyard.models.fields import APP_PATH

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["BackupCorrupted", "BackupMissing", "BackupStore", "DirectoryStore", "S3Store",
           "StoredObject", "backup_key", "seal", "store_for", "unseal"]

READ_BYTES = 1024 * 1024
PART_BYTES = 8 * 1024 * 1024  # S3 multipart: every part but the last must be >= 5 MiB
PARTIAL_SUFFIX = ".partial"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL
T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str  # of the stored (sealed) bytes


class BackupMissing(NotFound):
    def __init__(self, key: str) -> None:
        super().__init__("stored backup", key)


class BackupStore(Protocol):
    kind: str  # "local" | "s3", as Backup.storage records it

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> StoredObject: ...
    async def get(self, key: str) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def sweep_unfinished(self, older_than: float) -> int: ...


def store_for(settings: Settings) -> BackupStore:
    """The store the settings configure: S3 when a bucket is set, else the directory."""
    if settings.backups_s3_bucket:
        return S3Store(settings)
    return DirectoryStore(settings.backups_dir or settings.data_dir / "backups")


def checked_key(key: str) -> str:
    """A key as a relative path of plain names ('..' and absolute paths refused)."""
    if len(key) > 900 or re.fullmatch(APP_PATH, key) is None:
        raise InvalidInput(f"{key!r} is not a backup key: use a relative path of letters, "
                           "digits, '.', '_' and '-' without '..'")
    return key


class _Digest:
    """Counts and hashes bytes as they pass."""

    def __init__(self) -> None:
        self.size, self._sha = 0, hashlib.sha256()

    def add(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        self._sha.update(chunk)
        return chunk

    def stored(self, key: str) -> StoredObject:
        return StoredObject(key, self.size, self._sha.hexdigest())


class DirectoryStore:
    """Objects as files under `root` (mode 0700), written to a temporary name, fsynced and
    renamed into place. Leftovers of a crash end in PARTIAL_SUFFIX; `sweep_unfinished`
    removes them."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / checked_key(key)

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> StoredObject:
        final, digest = self.path(key), _Digest()
        await asyncio.to_thread(final.parent.mkdir, mode=0o700, parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}")
        try:
            with await asyncio.to_thread(_create, temporary) as handle:
                async for chunk in chunks:
                    await asyncio.to_thread(handle.write, digest.add(chunk))
                await asyncio.to_thread(_sync, handle.fileno())
            await asyncio.to_thread(_publish, temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return digest.stored(key)

    async def get(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = self.path(key).open("rb")
        except FileNotFoundError:
            raise BackupMissing(key) from None
        return _read_file(handle)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def sweep_unfinished(self, older_than: float) -> int:
        """Remove temporary files of puts that died (last written before `older_than`, a
        Unix time); how many."""
        return await asyncio.to_thread(self._sweep, older_than)

    def _sweep(self, older_than: float) -> int:
        removed = 0
        for leftover in self.root.rglob(f".*{PARTIAL_SUFFIX}"):
            if leftover.stat().st_mtime < older_than:
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed


def _create(path: Path) -> BinaryIO:
    return open(os.open(path, _NEW_FILE, 0o600), "wb")


def _sync(fd: int) -> None:
    os.fsync(fd)


def _publish(temporary: Path, final: Path) -> None:
    """Rename into place and make the rename itself durable."""
    os.replace(temporary, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


async def _read_file(handle: Any) -> AsyncIterator[bytes]:
    with handle:
        while chunk := await asyncio.to_thread(handle.read, READ_BYTES):
            yield chunk


class S3Store:
    """Objects in an S3-compatible bucket under the configured prefix; boto3 is synchronous,
    so each call runs in a thread. Large objects go up in PART_BYTES parts; a failed upload
    is aborted, and `sweep_unfinished` aborts those of a control plane killed mid-upload."""

    kind = "s3"

    def __init__(self, settings: Settings) -> None:
        self.bucket, self.prefix = settings.backups_s3_bucket, settings.backups_s3_prefix
        self._client = _s3_client(settings)

    def name(self, key: str) -> str:
        return self.prefix + checked_key(key)

    async def _call(self, method: Callable[..., T], **kwargs: Any) -> T:
        return await asyncio.to_thread(method, Bucket=self.bucket, **kwargs)

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> StoredObject:
        digest, parts = _Digest(), _Parts(chunks)
        first = await parts.next()
        if parts.done:
            await self._call(self._client.put_object, Key=self.name(key), Body=digest.add(first))
            return digest.stored(key)
        upload = await self._call(self._client.create_multipart_upload, Key=self.name(key))
        upload_id = upload["UploadId"]
        try:
            await self._upload_parts(key, upload_id, first, parts, digest)
        except BaseException:
            await self._call(self._client.abort_multipart_upload, Key=self.name(key),
                             UploadId=upload_id)
            raise
        return digest.stored(key)

    async def _upload_parts(self, key: str, upload_id: str, first: bytes, parts: _Parts,
                            digest: _Digest) -> None:
        done: list[dict[str, Any]] = []
        body = first
        while True:
            answer = await self._call(self._client.upload_part, Key=self.name(key),
                                      UploadId=upload_id, PartNumber=len(done) + 1,
                                      Body=digest.add(body))
            done.append({"ETag": answer["ETag"], "PartNumber": len(done) + 1})
            if parts.done:
                break
            body = await parts.next()
        await self._call(self._client.complete_multipart_upload, Key=self.name(key),
                         UploadId=upload_id, MultipartUpload={"Parts": done})

    async def get(self, key: str) -> AsyncIterator[bytes]:
        try:
            answer = await self._call(self._client.get_object, Key=self.name(key))
        except self._client.exceptions.NoSuchKey:
            raise BackupMissing(key) from None
        return _read_body(answer["Body"])

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object, Key=self.name(key))

    async def exists(self, key: str) -> bool:
        try:
            await self._call(self._client.head_object, Key=self.name(key))
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return False
            raise
        return True

    async def sweep_unfinished(self, older_than: float) -> int:
        """Abort multipart uploads under the prefix begun before `older_than` (Unix time)."""
        answer = await self._call(self._client.list_multipart_uploads, Prefix=self.prefix)
        stale = [u for u in answer.get("Uploads", [])
                 if u["Initiated"].timestamp() < older_than]
        for upload in stale:
            await self._call(self._client.abort_multipart_upload, Key=upload["Key"],
                             UploadId=upload["UploadId"])
        return len(stale)


def _s3_client(settings: Settings) -> S3Client:
    import boto3  # only when S3 is configured: it takes a while to import
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=settings.backups_s3_endpoint_url or None,
        region_name=settings.backups_s3_region or None,
        aws_access_key_id=settings.backups_s3_access_key or None,
        aws_secret_access_key=settings.backups_s3_secret_key.get_secret_value() or None,
        config=Config(signature_version="s3v4", retries={"mode": "standard"},
                      s3={"addressing_style": "path" if settings.backups_s3_endpoint_url
                          else "auto"}))


class _Parts:
    """An async byte stream cut into PART_BYTES pieces; `done` once the last is taken."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks, self._buffer, self.done = chunks, bytearray(), False

    async def next(self) -> bytes:
        while len(self._buffer) <= PART_BYTES:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                self.done = True
                break
            self._buffer += chunk
        part = bytes(self._buffer[:PART_BYTES])
        del self._buffer[:PART_BYTES]
        return part


async def _read_body(body: Any) -> AsyncIterator[bytes]:
    with body:
        while chunk := await asyncio.to_thread(body.read, READ_BYTES):
            yield chunk
