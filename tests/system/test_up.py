"""`dockyard up`, `down` and `serve` as a user runs them, on fresh data directories."""

from __future__ import annotations

import socket
import stat
import subprocess
from pathlib import Path

import httpx

from tests.live import (
    ADMIN_EMAIL,
    Live,
    dockyard,
    live_env,
    ok,
    ok_json,
    pid_alive,
    wait_until,
)
from tests.pg import free_port


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


def members(live: Live) -> list[dict[str, object]]:
    """The members of the only workspace, read through the API with the CLI's token."""
    spaces = ok_json(live.run("workspaces", "list", "--json"))
    assert [w["name"] for w in spaces] == ["default"]
    token = live.config_token()
    answer = httpx.get(
        f"{live.url}/api/v1/workspaces/{spaces[0]['id']}/members",
        headers={"Authorization": f"Bearer {token}"}, timeout=10,
    )
    assert answer.status_code == 200, answer.text
    result: list[dict[str, object]] = answer.json()
    return result


def test_up_on_a_fresh_data_dir_starts_the_api_and_creates_the_owner(live: Live) -> None:
    assert f"The API is running at {live.url}" in live.up_output
    assert f"Created the owner {ADMIN_EMAIL}" in live.up_output
    assert f"Dashboard: {live.url}/ (sign in as {ADMIN_EMAIL})" in live.up_output
    assert httpx.get(f"{live.url}/healthz", timeout=10).status_code == 200
    assert mode(live.data_dir) == 0o700
    assert mode(live.data_dir / "secret.key") == 0o600
    assert mode(live.config_file) == 0o600
    assert live.config_token().startswith("dy_")


def test_a_second_up_is_idempotent(live: Live) -> None:
    pid = live.pid_file.read_text()
    again = ok(live.run("up"))
    assert f"already running at {live.url}" in again
    assert "Created the owner" not in again
    assert f"Dashboard: {live.url}/" in again
    assert live.pid_file.read_text() == pid
    assert [m["email"] for m in members(live)] == [ADMIN_EMAIL]


def test_down_stops_the_api(live: Live) -> None:
    pid = int(live.pid_file.read_text())
    assert pid_alive(pid)
    assert "stopped" in ok(live.run("down"))
    wait_until(lambda: not pid_alive(pid), f"API process {pid} is gone", timeout=5)
    assert not port_open(live.url)
    assert not live.pid_file.exists()


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    from dockyard.kernel.security import ensure_key_file

    env = live_env(tmp_path, free_port())
    ensure_key_file(Path(env["DOCKYARD_DATA_DIR"]) / "secret.key")
    result = dockyard("serve", env=env, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "dockyard migrate" in lines[0]


def test_down_leaves_a_stranger_named_by_a_stale_pid_file_alone(tmp_path: Path) -> None:
    env = live_env(tmp_path, free_port())
    pid_file = Path(env["DOCKYARD_DATA_DIR"]) / "api.pid"
    pid_file.parent.mkdir(parents=True)
    with subprocess.Popen(["sleep", "60"]) as stranger:
        try:
            pid_file.write_text(str(stranger.pid))
            assert "stopped" in ok(dockyard("down", env=env))
            assert stranger.poll() is None, "dockyard down killed a process it did not start"
            assert not pid_file.exists()
        finally:
            stranger.kill()
