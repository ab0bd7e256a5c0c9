"""Commands run inside a managed container (Engine-API exec), as data: an argv, its
environment, and optionally a blob fed to its stdin. Stdout goes to a blob in the agent's
state directory, so the caller learns the exit code, size, digest and stderr tail before it
reads a byte of the output (a dump that failed half-way is never mistaken for a whole one)."""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

from dockyard.agent.commands import EngineCall
from dockyard.agent.models import Argument, EnvKey
from dockyard.kernel.errors import NotFound
from dockyard.models.fields import Whole

if TYPE_CHECKING:  # the control plane imports the models here, not the Docker SDK
    from dockyard.agent.runtime import DockerRuntime

BlobId = Annotated[str, Whole(r"[0-9a-f]{32}", "use a blob id of 32 hex digits")]
STDERR_TAIL_BYTES = 4096
BLOB_MAX_AGE_SECONDS = 24 * 3600
_CHUNK = 1024 * 1024
_STDOUT, _STDERR = 1, 2


class ExecRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    argv: list[Argument] = Field(min_length=1, max_length=256)
    env: dict[EnvKey, Argument] = Field(default_factory=dict, max_length=100)
    stdin: BlobId | None = None  # a blob uploaded before (POST /blobs)


class BlobInfo(BaseModel):
    id: str
    bytes: int
    sha256: str


class ExecResult(BaseModel):
    exit_code: int
    stdout: BlobInfo
    stderr_tail: str


def exec_create(container: str, request: ExecRequest) -> EngineCall:
    return EngineCall("exec_create", {
        "container": container, "cmd": list(request.argv), "environment": dict(request.env),
        "stdin": request.stdin is not None, "stdout": True, "stderr": True})


def exec_start(exec_id: str) -> EngineCall:
    return EngineCall("exec_start", {"exec_id": exec_id, "socket": True})


def exec_inspect(exec_id: str) -> EngineCall:
    return EngineCall("exec_inspect", {"exec_id": exec_id})


class BlobStore:
    """Files named by random ids under `directory`; the old ones go when a new one comes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, blob_id: str) -> Path:
        return self.directory / blob_id

    def existing(self, blob_id: str) -> Path:
        path = self.path(blob_id)
        if not path.is_file():
            raise NotFound("blob", blob_id)
        return path

    def new(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._forget_old()
        return secrets.token_hex(16)

    def _forget_old(self) -> None:
        cutoff = time.time() - BLOB_MAX_AGE_SECONDS
        for path in self.directory.iterdir():
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)

    async def receive(self, chunks: AsyncIterator[bytes]) -> BlobInfo:
        blob_id, digest, size = self.new(), hashlib.sha256(), 0
        async with await anyio.open_file(self.path(blob_id), "wb") as handle:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                await handle.write(chunk)
        return BlobInfo(id=blob_id, bytes=size, sha256=digest.hexdigest())

    async def chunks(self, blob_id: str) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self.existing(blob_id), "rb") as handle:
            while chunk := await handle.read(_CHUNK):
                yield chunk


class _Output:
    """Stdout into a file (counted, hashed), the tail of stderr in memory."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0
        self.stderr: deque[bytes] = deque()
        self.stderr_size = 0

    def take(self, stream: int, data: bytes) -> None:
        if stream == _STDOUT:
            self.handle.write(data)
            self.digest.update(data)
            self.size += len(data)
        elif stream == _STDERR:
            self.stderr.append(data)
            self.stderr_size += len(data)
            while self.stderr_size - len(self.stderr[0]) >= STDERR_TAIL_BYTES:
                self.stderr_size -= len(self.stderr.popleft())

    def stderr_tail(self) -> str:
        return b"".join(self.stderr)[-STDERR_TAIL_BYTES:].decode(errors="replace")


def _feed(raw: socket.socket, stdin: Path | None) -> None:
    """Send the stdin file, then close our side so the command sees its end."""
    try:
        if stdin is not None:
            with stdin.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    raw.sendall(chunk)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the command exited without reading all of it: its exit code says so


def _attached(runtime: DockerRuntime, container: str, request: ExecRequest) -> tuple[str, Any]:
    exec_id = runtime.execute(exec_create(container, request))["Id"]
    return exec_id, runtime.execute(exec_start(exec_id))


def _pump(sock: Any, stdin: Path | None, output: _Output) -> None:
    from docker.utils.socket import frames_iter

    raw: socket.socket = getattr(sock, "_sock", sock)
    feeder = threading.Thread(target=_feed, args=(raw, stdin), daemon=True)
    feeder.start()
    try:
        for stream, data in frames_iter(sock, tty=False):  # type: ignore[no-untyped-call]
            output.take(stream, data)
    finally:
        feeder.join()
        raw.close()


def run_exec(runtime: DockerRuntime, container: str, request: ExecRequest,
             stdin: Path | None, stdout: Path) -> ExecResult:
    """Run `request` in `container` (blocking: call it in a thread)."""
    import docker.errors

    from dockyard.agent.runtime import EngineError

    exec_id, sock = _attached(runtime, container, request)
    with stdout.open("wb") as handle:
        output = _Output(handle)
        try:
            _pump(sock, stdin, output)
        except (OSError, docker.errors.DockerException) as exc:
            raise EngineError(f"the command in {container} broke off: {exc}") from exc
    exit_code = runtime.execute(exec_inspect(exec_id))["ExitCode"]
    blob = BlobInfo(id=stdout.name, bytes=output.size, sha256=output.digest.hexdigest())
    return ExecResult(exit_code=exit_code if exit_code is not None else -1, stdout=blob,
                      stderr_tail=output.stderr_tail())


async def run_in_container(runtime: DockerRuntime, blobs: BlobStore, container: str,
                           request: ExecRequest) -> ExecResult:
    stdin = blobs.existing(request.stdin) if request.stdin else None
    stdout = blobs.path(blobs.new())
    try:
        return await anyio.to_thread.run_sync(run_exec, runtime, container, request, stdin,
                                              stdout)
    except BaseException:
        stdout.unlink(missing_ok=True)
        raise

