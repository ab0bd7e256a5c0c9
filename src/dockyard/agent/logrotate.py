"""The node's log files kept bounded by the agent itself: by size and by age.

A file is rotated once it holds more than `max_bytes`, or once its oldest line is older than
`max_age_seconds` (the agent counts from the file's last rotation, or from when it first saw
it): `name.1` ... `name.<files>` keep the newest rotated ones, the oldest goes, and rotated
files older than the age go too. So a file and its rotations hold at most
`(files + 1) x max_bytes`, plus what its writer adds between two checks.

Two ways, by who writes the file:
- `rename`: the writer reopens its files on a signal (nginx on USR1): the file is renamed
  to `name.1` and the writer told; lines it still had buffered land in `name.1`.
- `copy_truncate`: the writer cannot be told (a process's standard output, opened with
  O_APPEND: the agent's own log and dockerd's in the namespace cluster): the file is copied to
  `name.1` and truncated, and the writer goes on at the new end; a line written between the
  copy and the truncation is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anyio import to_thread

if TYPE_CHECKING:
    from dockyard.agent.proxy import Nginx

log = logging.getLogger("dockyard.agent")


@dataclass(frozen=True)
class Bound:
    """How much of one log file is kept: the live file up to `max_bytes`, and `files`
    rotated ones (at least 1: a reader may still be reading the last one)."""

    max_bytes: int
    files: int
    max_age_seconds: float


def rotated(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.{number}")


def shift(path: Path, bound: Bound) -> None:
    """Make room for a new `name.1`: the oldest kept goes, the others move up one."""
    rotated(path, bound.files).unlink(missing_ok=True)
    for number in range(bound.files - 1, 0, -1):
        if rotated(path, number).exists():
            rotated(path, number).replace(rotated(path, number + 1))


def rename(path: Path, bound: Bound) -> None:
    shift(path, bound)
    path.replace(rotated(path, 1))


def copy_truncate(path: Path, bound: Bound) -> None:
    shift(path, bound)
    shutil.copyfile(path, rotated(path, 1))
    os.truncate(path, 0)


def expire(path: Path, bound: Bound, now: float) -> list[Path]:
    """Remove the rotated files of `path` last written more than the age ago."""
    gone = []
    for number in range(1, bound.files + 1):
        older = rotated(path, number)
        try:
            if now - older.stat().st_mtime > bound.max_age_seconds:
                older.unlink()
                gone.append(older)
        except FileNotFoundError:
            continue
    return gone


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class Rotation:
    """When the files it watches are due: size, or the age of their oldest line."""

    def __init__(self, bound: Bound, clock: Callable[[], float] = time.time) -> None:
        self.bound = bound
        self.clock = clock
        self._since: dict[Path, float] = {}

    def due(self, path: Path) -> bool:
        size = size_of(path)
        since = self._since.setdefault(path, self.clock())
        return size > self.bound.max_bytes or (
            size > 0 and self.clock() - since > self.bound.max_age_seconds)

    def rotated(self, path: Path) -> None:
        """Note that `path` was just rotated, and drop its expired rotations."""
        self._since[path] = self.clock()
        expire(path, self.bound, self.clock())


@dataclass(frozen=True)
class Watched:
    """A log file, and how its writer is told of a rename (None: it cannot be told, so the
    file is copied and truncated instead)."""

    path: Path
    reopen: Callable[[], None] | None = None


class LogRotator:
    """Checks its files every `interval` seconds and rotates those due."""

    def __init__(self, files: list[Watched], bound: Bound, interval: float) -> None:
        self.files = files
        self.rotation = Rotation(bound)
        self.interval = interval

    def check(self) -> list[Path]:
        """Rotate every file that is due; the files rotated."""
        done = []
        for watched in self.files:
            if self.rotation.due(watched.path):
                self._rotate(watched)
                done.append(watched.path)
            else:
                expire(watched.path, self.rotation.bound, self.rotation.clock())
        return done

    def _rotate(self, watched: Watched) -> None:
        if watched.reopen is None:
            copy_truncate(watched.path, self.rotation.bound)
        else:
            rename(watched.path, self.rotation.bound)
            watched.reopen()
        self.rotation.rotated(watched.path)

    async def run(self) -> None:
        while True:
            try:
                await to_thread.run_sync(self.check)
            except Exception:  # the next round tries again; nothing here may stop the agent
                log.exception("rotating the node's log files failed")
            await asyncio.sleep(self.interval)


def node_rotator(nginx: Nginx, others: list[Path], bound: Bound, interval: float
                 ) -> LogRotator:
    """The node's logs but the request log (its reader rotates it): both nginx layers'
    error logs, and `others` (copied and truncated)."""
    files = [Watched(i.layout.error_log, i.reopen_logs) for i in nginx.instances]
    return LogRotator(files + [Watched(path) for path in others], bound, interval)
