"""Run `git http-backend` for one request: the request body streams into its standard input
and its answer streams back as it comes, nothing buffered beyond one read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from dockyard.agent import process
from dockyard.gitpush.cgi import BACKEND_ARGV, CgiHead, parse_head, split_head

CHUNK = 64 * 1024
NO_ANSWER = CgiHead(502, [("Content-Type", "text/plain")])


@dataclass
class CgiAnswer:
    head: CgiHead
    body: AsyncGenerator[bytes, None]


async def run_backend(env: dict[str, str], body: AsyncIterator[bytes], limit: int) -> CgiAnswer:
    """Start the backend, feed it `body` (at most `limit` bytes: beyond, it is stopped) and
    read its CGI head; the rest of its output follows in `body`."""
    proc = await process.piped(BACKEND_ARGV, env=env)
    feeder = asyncio.create_task(_feed(proc, body, limit))
    head, first = await _read_head(proc)
    return CgiAnswer(head or NO_ANSWER, _rest(proc, feeder, first))


async def _feed(proc: asyncio.subprocess.Process, body: AsyncIterator[bytes], limit: int
                ) -> None:
    assert proc.stdin is not None
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                proc.kill()
                return
            if proc.stdin.is_closing():
                return  # it answered and exited without reading everything (a GET, a refusal)
            proc.stdin.write(chunk)
            await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return  # it stopped reading while this chunk was on its way
    finally:
        proc.stdin.close()


async def _read_head(proc: asyncio.subprocess.Process) -> tuple[CgiHead | None, bytes]:
    assert proc.stdout is not None
    buffer = b""
    while (parts := split_head(buffer)) is None:
        chunk = await proc.stdout.read(CHUNK)
        if not chunk:
            return None, b"git http-backend ended without answering\n"
        buffer += chunk
    return parse_head(parts[0]), parts[1]


async def _rest(proc: asyncio.subprocess.Process, feeder: asyncio.Task[None], first: bytes
                ) -> AsyncGenerator[bytes, None]:
    assert proc.stdout is not None
    try:
        if first:
            yield first
        while chunk := await proc.stdout.read(CHUNK):
            yield chunk
        await feeder
        await proc.wait()
    finally:
        feeder.cancel()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
