"""Sealing: a round trip gives the bytes back; every kind of tampering is refused; a large
input streams through bounded memory."""

from __future__ import annotations

import os
import struct
import tracemalloc
from collections.abc import AsyncIterator, Iterable

import pytest

from dockyard.core.backup_seal import (
    CHUNK_BYTES,
    MAGIC,
    SALT_BYTES,
    BackupCorrupted,
    backup_key,
    seal,
    unseal,
)

KEY = backup_key(b"k" * 32, "workspace-1")
HEADER = len(MAGIC) + SALT_BYTES


async def stream(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def sealed_bytes(data: bytes, key: bytes = KEY) -> bytes:
    return b"".join([c async for c in seal(stream([data]), key)])


async def opened(sealed: bytes, key: bytes = KEY, piece: int = 4096) -> bytes:
    pieces = [sealed[i:i + piece] for i in range(0, len(sealed), piece)]
    return b"".join([c async for c in unseal(stream(pieces), key)])


def frames(sealed: bytes) -> list[bytes]:
    """The sealed file's frames (length prefix included), after the header."""
    result, at = [], HEADER
    while at < len(sealed):
        size = struct.unpack(">I", sealed[at:at + 4])[0]
        result.append(sealed[at:at + 4 + size])
        at += 4 + size
    return result


async def test_round_trip_of_empty_small_and_multi_chunk_data() -> None:
    incompressible = os.urandom(3 * CHUNK_BYTES + 123)
    for data in (b"", b"hello backup", incompressible, b"x" * (5 * CHUNK_BYTES)):
        assert await opened(await sealed_bytes(data)) == data
    assert await opened(await sealed_bytes(b"hello"), piece=1) == b"hello"  # byte by byte


async def test_sealed_bytes_are_compressed_and_do_not_show_the_plaintext() -> None:
    data = b"SELECT secret FROM customers;\n" * 10_000
    sealed = await sealed_bytes(data)
    assert len(sealed) < len(data) // 20
    assert b"secret" not in sealed
    assert sealed != await sealed_bytes(data)  # a fresh salt, so a fresh key, each time


async def test_a_flipped_bit_anywhere_is_detected() -> None:
    sealed = await sealed_bytes(os.urandom(2 * CHUNK_BYTES + 10))
    for position in (0, len(MAGIC) + 3, HEADER + 1, HEADER + 4 + 100, len(sealed) - 1,
                     HEADER + 4 + CHUNK_BYTES + 16 + 2):
        damaged = bytearray(sealed)
        damaged[position] ^= 0x01
        with pytest.raises(BackupCorrupted):
            await opened(bytes(damaged))


async def test_truncation_at_and_between_chunk_boundaries_is_detected() -> None:
    sealed = await sealed_bytes(os.urandom(2 * CHUNK_BYTES + 10))
    first, second, _last = frames(sealed)
    for cut in (0, 5, HEADER, HEADER + len(first), HEADER + len(first) + len(second),
                HEADER + len(first) + 7, len(sealed) - 1):
        with pytest.raises(BackupCorrupted):
            await opened(sealed[:cut])


async def test_reordered_repeated_dropped_or_appended_chunks_are_detected() -> None:
    sealed = await sealed_bytes(os.urandom(2 * CHUNK_BYTES + 10))
    header, (first, second, last) = sealed[:HEADER], frames(sealed)
    for frames_ in ([second, first, last], [first, first, second, last], [first, last],
                    [first, second, last, last], [first, second, last, first]):
        with pytest.raises(BackupCorrupted):
            await opened(header + b"".join(frames_))
    with pytest.raises(BackupCorrupted):
        await opened(sealed + b"\x00")


async def test_a_frame_from_another_backup_with_the_same_key_is_refused() -> None:
    one = await sealed_bytes(b"a" * 100)
    other = await sealed_bytes(b"b" * 100)
    with pytest.raises(BackupCorrupted):
        await opened(one[:HEADER] + frames(other)[0])


async def test_another_key_or_another_workspace_cannot_open_it() -> None:
    sealed = await sealed_bytes(b"data of workspace 1")
    for key in (backup_key(b"k" * 32, "workspace-2"), backup_key(b"j" * 32, "workspace-1")):
        with pytest.raises(BackupCorrupted, match="another key"):
            await opened(sealed, key)


async def test_a_file_that_is_not_a_backup_is_refused_with_a_clear_message() -> None:
    with pytest.raises(BackupCorrupted, match="not a Dockyard backup"):
        await opened(b"PGDMP\x01\x0e\x00" + b"\x00" * 100)


async def test_100_mb_stream_through_in_bounded_memory() -> None:
    block = os.urandom(64 * 1024)
    total = 100 * 1024 * 1024

    async def produce() -> AsyncIterator[bytes]:
        for _ in range(total // len(block)):
            yield block

    tracemalloc.start()
    try:
        seen = 0
        async for piece in unseal(seal(produce(), KEY, level=1), KEY):
            seen += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == total
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes: the stream was held in memory"
