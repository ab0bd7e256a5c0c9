"""`git http-backend` run for one request, on uvloop as the API runs it: a request body that
arrives after the backend answered and exited is dropped, not written to a closed pipe (that
raised and cut git's answer short: "transfer closed with outstanding read data remaining")."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import uvloop

from dockyard.gitpush import repos
from dockyard.gitpush.backend import run_backend
from dockyard.gitpush.cgi import GitRequest, backend_env

ADVERTISE = GitRequest("GET", "info/refs", "service=git-receive-pack")


def backend_children() -> list[str]:
    """This process's children that are still `git` (running or not yet reaped)."""
    me = os.getpid()
    pids = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except FileNotFoundError:
            continue
    return [name for name in names if name.startswith("git")]


async def late_body(limit_loops: int = 2000) -> AsyncIterator[bytes]:
    """uvicorn's empty GET body, handed over only once the backend is gone."""
    for _ in range(limit_loops):
        if not backend_children():
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0)  # one more turn: the loop closes the exited child's pipes
    yield b""
    yield b"more than the backend ever read"


async def advertise(root: Path) -> tuple[int, bytes]:
    env = backend_env(ADVERTISE, root, "web.git", "user", os.environ.get("PATH", ""))
    answer = await run_backend(env, late_body(), limit=1024)
    body = b"".join([chunk async for chunk in answer.body])
    return answer.head.status, body


def test_a_body_arriving_after_the_backend_exited_does_not_cut_its_answer(tmp_path: Path
                                                                          ) -> None:
    repos.ensure_repo(tmp_path, "web", "main")
    status, body = uvloop.run(advertise(tmp_path))
    assert status == 200
    assert body.startswith(b"001f# service=git-receive-pack\n")
    assert body.endswith(b"0000")
