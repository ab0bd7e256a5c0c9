"""DOCKYARD_WORKER=embedded: `dockyard up` starts no worker process, the API process runs the
jobs (a request's metrics record, stored by the worker's task), and `down` leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import ADMIN_EMAIL, ADMIN_PASSWORD, Live, bring_up, start, stop, wait_until


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Live]:
    env, url = start(tmp_path / "live")
    env["DOCKYARD_WORKER"] = "embedded"
    try:
        yield Live(url, env, tmp_path / "live", bring_up(env))
    finally:
        stop(env)


def processes_of(data_dir: Path) -> dict[int, bytes]:
    """The command lines of this user's processes started with this data directory."""
    marker = f"DOCKYARD_DATA_DIR={data_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def stored_records(live: Live, headers: dict[str, str], request_id: str) -> list[object]:
    answer = httpx.get(f"{live.url}/metrics/requests", headers=headers,
                       params={"path_prefix": "/api/v1/projects"}, timeout=10)
    answer.raise_for_status()
    return [r for r in answer.json() if r["request_id"] == request_id]


def test_up_runs_no_worker_process_and_the_api_runs_the_jobs(embedded: Live) -> None:
    assert "Started the worker" not in embedded.up_output
    api_pid = int(embedded.pid_file.read_text())
    assert list(processes_of(embedded.data_dir)) == [api_pid]
    assert not (embedded.data_dir / "worker.pid").exists()
    login = httpx.post(f"{embedded.url}/api/v1/auth/token", timeout=10,
                       data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}",
               "X-Request-ID": "embedded-1"}
    httpx.get(f"{embedded.url}/api/v1/projects", headers=headers).raise_for_status()
    wait_until(lambda: bool(stored_records(embedded, headers, "embedded-1")),
               "the API process's worker has stored the request's record")


def test_down_leaves_no_process(embedded: Live) -> None:
    assert processes_of(embedded.data_dir)
    out = embedded.run("down")
    assert out.returncode == 0, out.stderr
    assert "The api stopped." in out.stdout
    assert processes_of(embedded.data_dir) == {}
