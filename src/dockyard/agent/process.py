"""The one place that runs programs: argv lists only, never a shell."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class CommandFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], result: Result) -> None:
        super().__init__(f"{' '.join(argv)} exited {result.returncode}: {result.output.strip()}")
        self.result = result


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(argv: Sequence[str], *, timeout: float = 120, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, pass_fds: Sequence[int] = ()) -> Result:
    """Run `argv` to completion; stdout and stderr together in `output`; the program inherits
    the open files `pass_fds` (and the locks on them)."""
    completed = subprocess.run(  # noqa: S603 - argv list, no shell
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout, check=False, env=dict(env) if env is not None else None, cwd=cwd,
        pass_fds=tuple(pass_fds),
    )
    return Result(completed.returncode, completed.stdout)


def check(argv: Sequence[str], **options: object) -> Result:
    """Like `run`, raising `CommandFailed` unless the program succeeds."""
    result = run(argv, **options)  # type: ignore[arg-type]
    if not result.ok:
        raise CommandFailed(argv, result)
    return result


def spawn(argv: Sequence[str], *, log_file: Path, env: Mapping[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    """Start a long-running program in its own session, its output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - argv list, no shell
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=dict(env) if env is not None else None,
        )


def reading(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `argv` with its standard output as a pipe for the caller to read (and wait for);
    its standard error is this process's."""
    return subprocess.Popen(  # noqa: S603 - argv list, no shell
        list(argv), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd,
        env=dict(env) if env is not None else None)


async def piped(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> asyncio.subprocess.Process:
    """Start `argv` with pipes to its standard input and from its standard output, for the
    caller to stream through; its standard error is this process's."""
    return await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=cwd,
        env=dict(env) if env is not None else None)


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc ('Z' for a zombie); None without /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def is_running(pid: int) -> bool:
    """True while the process exists and has not exited. An exited child of ours that its
    new parent has not reaped yet (a zombie, common under a container's init) has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) != "Z"
