"""Sealing a backup: compressed (zlib), then encrypted in chunks with AES-256-GCM, streaming
both ways, so a dump of any size passes through a few MiB of memory.

The sealed form is a header (MAGIC and a random 32-byte salt; the object's key is derived
from the workspace key and the salt) followed by frames: a 4-byte big-endian length and one
chunk's ciphertext with its tag. A chunk's nonce is its index (11 bytes) and a flag byte that
is 1 on the last chunk only, and every chunk authenticates the header: a flipped bit, a
reordered, dropped or repeated chunk, a cut after any chunk, bytes after the last one or
another key all fail with BackupCorrupted."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import AsyncIterator, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dockyard.kernel.errors import DockyardError

MAGIC = b"DOCKYARD-BACKUP-1\n"
SALT_BYTES = 32
CHUNK_BYTES = 1024 * 1024  # compressed bytes per encrypted chunk
TAG_BYTES = 16
_LENGTH = struct.Struct(">I")
_HEADER_BYTES = len(MAGIC) + SALT_BYTES


class BackupCorrupted(DockyardError):
    """A stored backup is damaged, was tampered with, or was sealed with another key."""

    status_code = 409


def backup_key(secrets_key: bytes, workspace_id: str) -> bytes:
    """A workspace's backup key, derived from the platform's secrets key (`p.keys.secrets`)."""
    return _hkdf(secrets_key, None, f"dockyard:backups:{workspace_id}")


def _hkdf(key: bytes, salt: bytes | None, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=purpose.encode()).derive(key)


def _cipher(key: bytes, salt: bytes) -> AESGCM:
    return AESGCM(_hkdf(key, salt, "dockyard:backup-object"))


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def _frame(cipher: AESGCM, index: int, plain: bytes, header: bytes, final: bool) -> bytes:
    sealed = cipher.encrypt(_nonce(index, final), plain, header)
    return _LENGTH.pack(len(sealed)) + sealed


async def seal(chunks: AsyncIterator[bytes], key: bytes, level: int = 6
               ) -> AsyncIterator[bytes]:
    """`chunks` compressed, then encrypted with `key` (see `backup_key`)."""
    header = MAGIC + os.urandom(SALT_BYTES)
    cipher, compressor = _cipher(key, header[len(MAGIC):]), zlib.compressobj(level)
    yield header
    pending, index = bytearray(), 0
    async for chunk in chunks:
        pending += compressor.compress(chunk)
        while len(pending) >= CHUNK_BYTES:
            yield _frame(cipher, index, bytes(pending[:CHUNK_BYTES]), header, final=False)
            del pending[:CHUNK_BYTES]
            index += 1
    pending += compressor.flush()
    while len(pending) > CHUNK_BYTES:
        yield _frame(cipher, index, bytes(pending[:CHUNK_BYTES]), header, final=False)
        del pending[:CHUNK_BYTES]
        index += 1
    yield _frame(cipher, index, bytes(pending), header, final=True)


async def unseal(chunks: AsyncIterator[bytes], key: bytes) -> AsyncIterator[bytes]:
    """The original bytes of a sealed backup; BackupCorrupted as soon as anything is off
    (bytes already yielded came from chunks that did authenticate)."""
    reader = _Reader(chunks)
    header = await reader.read(_HEADER_BYTES)
    if len(header) < _HEADER_BYTES or not header.startswith(MAGIC):
        raise BackupCorrupted("the stored file is not a Dockyard backup (its header is wrong)")
    cipher, inflater = _cipher(key, header[len(MAGIC):]), zlib.decompressobj()
    index, final = 0, False
    while not final:
        plain, final = _open(cipher, index, await _next_frame(reader, index), header)
        for piece in _inflate(inflater, plain):
            yield piece
        index += 1
    if await reader.read(1):
        raise BackupCorrupted("the stored backup has bytes after its last chunk")
    if not inflater.eof or inflater.unused_data:
        raise BackupCorrupted("the stored backup's compressed data is incomplete")


async def _next_frame(reader: _Reader, index: int) -> bytes:
    length = await reader.read(_LENGTH.size)
    size = _LENGTH.unpack(length)[0] if len(length) == _LENGTH.size else -1
    if not TAG_BYTES <= size <= CHUNK_BYTES + TAG_BYTES:
        raise BackupCorrupted(f"the stored backup is cut short or damaged at chunk {index}")
    sealed = await reader.read(size)
    if len(sealed) < size:
        raise BackupCorrupted(f"the stored backup is cut short in chunk {index}")
    return sealed


def _open(cipher: AESGCM, index: int, sealed: bytes, header: bytes) -> tuple[bytes, bool]:
    """A chunk's plaintext and whether it is the last; the flag is part of its nonce."""
    for final in (False, True):
        try:
            return cipher.decrypt(_nonce(index, final), sealed, header), final
        except InvalidTag:
            continue
    raise BackupCorrupted(f"chunk {index} of the stored backup does not authenticate: the "
                          "file is damaged, reordered, or was sealed with another key")


def _inflate(inflater: zlib._Decompress, data: bytes) -> Iterator[bytes]:
    """Decompressed pieces of at most CHUNK_BYTES each (a small chunk may inflate a lot)."""
    while True:
        try:
            piece = inflater.decompress(data, CHUNK_BYTES)
        except zlib.error as exc:
            raise BackupCorrupted(f"the stored backup does not decompress: {exc}") from exc
        if piece:
            yield piece
        data = inflater.unconsumed_tail
        if not data and len(piece) < CHUNK_BYTES:
            return


class _Reader:
    """Exact-size reads over an async iterator of byte strings of any size."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    async def read(self, size: int) -> bytes:
        """`size` bytes, or fewer only at the end of the stream."""
        while len(self._buffer) < size:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        result = bytes(self._buffer[:size])
        del self._buffer[:size]
        return result
