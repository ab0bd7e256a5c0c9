"""The control plane's background processes on this machine: API, worker, relay.

Each is `python -m dockyard.cli.main COMMAND`, detached from the terminal, with a pid file
and a log file in the data directory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dockyard.agent.process import is_running
from dockyard.cli.client import CliError
from dockyard.core import own_logs
from dockyard.kernel.settings import Settings

STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Daemon:
    name: str
    command: str

    def pid_file(self, settings: Settings) -> Path:
        return settings.data_dir / f"{self.name}.pid"

    def log_file(self, settings: Settings) -> Path:
        return own_logs.log_file(settings, self.name)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "dockyard.cli.main", self.command]


API = Daemon("api", "serve")
WORKER = Daemon("worker", "worker")
RELAY = Daemon("relay", "relay")
ALL = (API, WORKER, RELAY)


def start(daemon: Daemon, settings: Settings) -> subprocess.Popen[bytes]:
    log = daemon.log_file(settings)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            daemon.argv(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    daemon.pid_file(settings).write_text(str(process.pid))
    return process


def running_pid(daemon: Daemon, settings: Settings) -> int | None:
    """The pid of this daemon if its pid file names a live process that is really it."""
    pid_file = daemon.pid_file(settings)
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text())
    return pid if _is_ours(pid, daemon) else None


def stop(daemon: Daemon, settings: Settings) -> bool:
    """Stop it if it runs; forget its pid file either way. True if a pid file was there."""
    pid_file = daemon.pid_file(settings)
    if not pid_file.exists():
        return False
    pid = running_pid(daemon, settings)
    if pid is not None:  # a stale file (say, after a reboot) may name someone else's process
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        _wait_gone(pid)
    pid_file.unlink()
    return True


def _is_ours(pid: int, daemon: Daemon) -> bool:
    if not is_running(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc/self").exists()  # no /proc on this system: trust the pid file
    return b"dockyard.cli.main" in argv and daemon.command.encode() in argv


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not is_running(pid):
            return
        time.sleep(0.1)
    raise CliError(f"process {pid} did not stop within {STOP_TIMEOUT:.0f}s")
