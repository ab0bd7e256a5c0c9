"""A real Dockyard on this machine: `dockyard up` in a subprocess, on its own data dir,
config dir and free port, stopped with `dockyard down` whatever the test did."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.pg import free_port

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
ADMIN_EMAIL = "owner@example.com"
ADMIN_PASSWORD = "correct-horse-battery"
COMMAND_TIMEOUT = 90.0
_INHERITED_SETTINGS = ("DOCKYARD_", "DATABASE_URL", "REDIS_URL", "XDG_")


def clean_environ() -> dict[str, str]:
    """This process's environment without any Dockyard or XDG setting that could leak in,
    but DOCKYARD_DASHBOARD_DIR: the dashboard built for this run, if not the package's."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_SETTINGS)}
    if "DOCKYARD_DASHBOARD_DIR" in os.environ:
        kept["DOCKYARD_DASHBOARD_DIR"] = os.environ["DOCKYARD_DASHBOARD_DIR"]
    return kept


def live_env(base: Path, port: int) -> dict[str, str]:
    """Settings for a server and its CLI, all inside `base`."""
    return {
        **clean_environ(),
        "DOCKYARD_DATA_DIR": str(base / "data"),
        "DOCKYARD_PORT": str(port),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_DATA_HOME": str(base / "xdg-data"),
        "DOCKYARD_ADMIN_EMAIL": ADMIN_EMAIL,
        "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "COLUMNS": "200",
        # Nothing outside is reachable from tests: a closed local port fails a call at once.
        "DOCKYARD_CLOUDFLARE_API_URL": "http://127.0.0.1:9/client/v4",
        "DOCKYARD_ACME_DIRECTORY_URL": "https://127.0.0.1:9/directory",
        "DOCKYARD_DIGITALOCEAN_API_URL": "http://127.0.0.1:9",
        "DOCKYARD_DIGITALOCEAN_RETRY_SECONDS": "0",
    }


def dockyard(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the `dockyard` console script. Its own session: no terminal to prompt on, so a
    password prompt reads standard input."""
    return subprocess.run(
        [DOCKYARD, *args], env=env, input=input, capture_output=True, text=True,
        timeout=timeout, start_new_session=True, check=False,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The standard output of a command that must have succeeded."""
    assert result.returncode == 0, f"{result.args} -> {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Assert the command failed with exit code 1 and exactly one error line holding
    every fragment; return that line."""
    assert result.returncode == 1, f"{result.args} -> {result.returncode}\n{result.stdout}"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


@dataclass
class Live:
    """A running control plane and the environment its CLI uses."""

    url: str
    env: dict[str, str]
    base: Path
    up_output: str

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DOCKYARD_DATA_DIR"])

    @property
    def config_file(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "dockyard" / "config.json"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "api.pid"

    def config_token(self) -> str:
        """The API token the CLI saved."""
        return str(json.loads(self.config_file.read_text())["token"])

    def run(
        self, *args: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """`dockyard ARGS` with this server's environment plus `env`."""
        return dockyard(*args, env={**self.env, **env}, input=input)


def pid_alive(pid: int) -> bool:
    """True while the process runs: an exited process its parent has not reaped yet (a
    zombie, state Z in /proc) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Poll `condition()` until true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.05)


def stop(env: dict[str, str]) -> None:
    """`dockyard down`; if that leaves the recorded API alive, kill it."""
    pid_file = Path(env["DOCKYARD_DATA_DIR"]) / "api.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    dockyard("down", env=env)
    if pid is not None and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), f"process {pid} is gone")


def start(base: Path) -> tuple[dict[str, str], str]:
    """The environment of a fresh server in `base`, and its URL."""
    port = free_port()
    return live_env(base, port), f"http://127.0.0.1:{port}"


def bring_up(env: dict[str, str]) -> str:
    """`dockyard up`; its output, or the test fails with the output and the API's log."""
    result = dockyard("up", env=env)
    if result.returncode != 0:
        log = Path(env["DOCKYARD_DATA_DIR"]) / "logs" / "api.log"
        tail = log.read_text()[-3000:] if log.exists() else "(no log)"
        pytest.fail(f"dockyard up failed ({result.returncode}):\n{result.stdout}\n"
                    f"{result.stderr}\napi.log:\n{tail}")
    return result.stdout


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """A control plane started with `dockyard up`, always stopped afterwards."""
    base = tmp_path / "live"
    env, url = start(base)
    try:
        yield Live(url, env, base, bring_up(env))
    finally:
        stop(env)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in a thread; yields its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
