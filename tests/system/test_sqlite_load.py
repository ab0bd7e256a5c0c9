"""One SQLite file, written at once by the API (several processes), the library in another
process and the CLI: no "database is locked", no 5xx, no lost row."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.live import DOCKYARD, Live, bring_up, start, stop
from tests.system.api_processes import serving_processes
from tests.system.load_workers import SPREAD, key, service_for

WORKERS = Path(__file__).with_name("load_workers.py")
LIBRARY_WRITES = 1000
HTTP_WRITES = 400
HTTP_THREADS = 4
CLI_ROUNDS = 20
CLI_KEYS_PER_ROUND = 10
DEADLINE = 150.0
API_WORKERS = 2
SERVER_ERROR = re.compile(r'HTTP/1\.1" 5\d\d|HTTP 5\d\d')


@pytest.fixture
def live_workers(tmp_path: Path) -> Iterator[Live]:
    """`dockyard up` with several API processes, each logging every request."""
    base = tmp_path / "live"
    env, url = start(base)
    env |= {"DOCKYARD_API_WORKERS": str(API_WORKERS), "DOCKYARD_ACCESS_LOG": "true"}
    try:
        yield Live(url, env, base, bring_up(env))
    finally:
        stop(env)


@dataclass
class Worker:
    prefix: str
    writes: int
    process: subprocess.Popen[str]


PLAN = {"lib": LIBRARY_WRITES, "http-a": HTTP_WRITES, "http-b": HTTP_WRITES,
        "cli": CLI_ROUNDS * CLI_KEYS_PER_ROUND}


def api(live: Live) -> httpx.Client:
    headers = {"Authorization": f"Bearer {live.config_token()}"}
    return httpx.Client(base_url=f"{live.url}/api/v1", headers=headers, timeout=60)


def create_services(http: httpx.Client) -> None:
    assert http.post("/projects", json={"name": "load"}).status_code == 201
    for prefix in PLAN:
        for index in range(SPREAD):
            answer = http.post("/projects/load/services", json={"name": service_for(prefix, index)})
            assert answer.status_code == 201, answer.text


def spawn(live: Live, mode: str, prefix: str, count: int, *args: str) -> Worker:
    argv = [sys.executable, str(WORKERS), mode, prefix, str(count), *args]
    process = subprocess.Popen(
        argv, env={**live.env, "DOCKYARD_URL": live.url}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    return Worker(prefix, PLAN[prefix], process)


def spawn_all(live: Live, http: httpx.Client) -> list[Worker]:
    me = http.get("/auth/me").json()
    token = live.config_token()
    workers = [spawn(live, "library", "lib", LIBRARY_WRITES, me["user"]["id"], me["workspace_id"])]
    for prefix in ("http-a", "http-b"):
        workers.append(spawn(live, "http", prefix, HTTP_WRITES, str(HTTP_THREADS), live.url, token))
    return [*workers, spawn(live, "cli", "cli", CLI_ROUNDS, str(CLI_KEYS_PER_ROUND), DOCKYARD)]


def finish(workers: list[Worker]) -> dict[str, str]:
    """Each worker's output, once all have exited; kills them all if the deadline passes."""
    deadline = time.monotonic() + DEADLINE
    outputs = {}
    try:
        for worker in workers:
            out, err = worker.process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs[worker.prefix] = out + err
            assert worker.process.returncode == 0, f"{worker.prefix} failed:\n{out}\n{err}"
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
    return outputs


def stored_keys(http: httpx.Client, prefix: str) -> set[str]:
    """Every variable stored in the services of one worker."""
    found: set[str] = set()
    for index in range(SPREAD):
        answer = http.get(f"/projects/load/services/{service_for(prefix, index)}/env")
        assert answer.status_code == 200, answer.text
        found |= {row["key"] for row in answer.json()}
    return found


def assert_no_lock_or_server_error(text: str, where: str) -> None:
    assert "database is locked" not in text, f"{where}: database is locked"
    assert SERVER_ERROR.search(text) is None, f"{where}: {SERVER_ERROR.search(text)}"


@pytest.mark.slow
def test_api_library_and_cli_write_one_sqlite_file_at_once(live_workers: Live) -> None:
    live = live_workers
    assert sum(PLAN.values()) >= 2000
    with api(live) as http:
        create_services(http)
        started = time.monotonic()
        outputs = finish(spawn_all(live, http))
        elapsed = time.monotonic() - started
        summaries = {prefix: json.loads(text.splitlines()[0]) for prefix, text in outputs.items()}
        total = sum(summary["writes"] for summary in summaries.values())
        print(f"\n{total} writes from 4 processes (2 through the API's {API_WORKERS} processes, "
              "1 CLI loop, 1 library) "
              f"in {elapsed:.1f}s: {total / elapsed:.0f} writes/s")
        for prefix, summary in summaries.items():
            print(f"  {prefix}: {summary['writes']} writes in {summary['seconds']}s")

        for prefix, text in outputs.items():
            assert_no_lock_or_server_error(text, prefix)
        api_log = (live.data_dir / "logs" / "api.log").read_text()
        assert_no_lock_or_server_error(api_log, "api.log")
        assert len(serving_processes(live)) == API_WORKERS
        assert {prefix: summary["writes"] for prefix, summary in summaries.items()} == PLAN
        for prefix, writes in PLAN.items():
            expected = {key(prefix, index) for index in range(writes)}
            assert stored_keys(http, prefix) == expected, f"{prefix}: rows lost"
