"""`dockyard up` with DOCKYARD_API_WORKERS=2: both processes answer requests, only one runs
the API's background loops, another takes them over when it dies, a deployment's event
stream (SSE) follows events another process writes in whichever process serves it, and
`dockyard down` stops every process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.deploy.events import DONE, EventLog
from dockyard.kernel.settings import Settings
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.enums import DeploymentStatus
from dockyard.models.tables import Deployment, Service
from tests.live import Live, bring_up, pid_alive, start, stop, wait_until
from tests.system.api_processes import serving_processes

LOOPS_LINE = re.compile(r"this process \(pid (\d+)\) runs the API's background loops")
MAX_CONNECTIONS = 64
PLAN = DeploymentPlan.model_validate({
    "source": {"kind": "image", "image": "127.0.0.1:5000/web:1"},
    "image": "127.0.0.1:5000/web:deploy_1", "params": {}, "servers": [], "site": "shop-web",
    "hosts": []})


ACCOUNT_LIMIT = 3


@pytest.fixture
def live2(tmp_path: Path) -> Iterator[Live]:
    base = tmp_path / "live"
    env, url = start(base)
    env.update(DOCKYARD_API_WORKERS="2", DOCKYARD_LOGIN_LIMIT_PER_ACCOUNT=str(ACCOUNT_LIMIT))
    try:
        yield Live(url, env, base, bring_up(env))
    finally:
        stop(env)


def connection_owners(live: Live) -> set[int]:
    """The pids holding this API's established server-side connections."""
    port = live.url.rsplit(":", 1)[1]
    argv = ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"]
    listing = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", listing)}


def loop_holders(live: Live) -> list[int]:
    """Every pid that logged taking the background loops, in order."""
    log = (live.data_dir / "logs" / "api.log").read_text()
    return [int(pid) for pid in LOOPS_LINE.findall(log)]


def open_until_served_by(live: Live, wanted: set[int], clients: list[httpx.Client]) -> None:
    """Keep opening connections (each answered once, then kept) until every wanted process
    holds one of them."""
    while connection_owners(live) != wanted and len(clients) < MAX_CONNECTIONS:
        clients.append(httpx.Client(base_url=live.url, timeout=10))
        assert clients[-1].get("/healthz").status_code == 200


@pytest.mark.slow
def test_two_processes_serve_and_one_runs_the_loops(live2: Live) -> None:
    processes = serving_processes(live2)
    assert len(processes) == 2
    clients: list[httpx.Client] = []
    try:
        open_until_served_by(live2, processes, clients)
        assert connection_owners(live2) == processes, f"{len(clients)} connections"
    finally:
        for client in clients:
            client.close()
    # Both have served, so both event loops ran their first try at the lock file.
    assert len(loop_holders(live2)) == 1
    assert set(loop_holders(live2)) <= processes


@pytest.mark.slow
def test_a_login_limit_holds_for_the_machine_not_per_process(live2: Live) -> None:
    clients: list[httpx.Client] = []
    try:
        open_until_served_by(live2, serving_processes(live2), clients)
        form = {"username": "someone@example.com", "password": "wrong"}
        answers = [c.post("/api/v1/auth/token", data=form).status_code for c in clients * 2]
    finally:
        for client in clients:
            client.close()
    assert answers[:ACCOUNT_LIMIT] == [401] * ACCOUNT_LIMIT
    assert set(answers[ACCOUNT_LIMIT:]) == {429}, "each process counted on its own"


@pytest.mark.slow
def test_another_process_takes_the_loops_over_and_down_stops_all(live2: Live) -> None:
    wait_until(lambda: len(loop_holders(live2)) == 1, "one process runs the loops")
    holder = loop_holders(live2)[0]
    os.kill(holder, signal.SIGKILL)
    wait_until(lambda: len(loop_holders(live2)) == 2, "another process took the loops over")
    successor = loop_holders(live2)[1]
    assert successor != holder
    assert pid_alive(successor)
    wait_until(lambda: len(serving_processes(live2)) == 2, "uvicorn replaced the dead process")
    assert httpx.get(f"{live2.url}/healthz", timeout=10).status_code == 200
    everyone = serving_processes(live2)
    assert live2.run("down").returncode == 0
    assert not [pid for pid in everyone if pid_alive(pid)]


async def new_deployment(platform: Platform, service: str) -> str:
    """A finished deployment row of `service`, written by this (test) process."""

    async def tx(s: AsyncSession) -> str:
        found = (await s.execute(select(Service).where(Service.name == service))).scalar_one()
        row = Deployment(workspace_id=found.workspace_id, service_id=found.id,
                         status=DeploymentStatus.FAILED, **PLAN.to_columns())
        s.add(row)
        await s.flush()
        return row.id

    return await platform.db.write(tx)


async def event_kinds(live: Live, path: str, opened: asyncio.Event) -> list[str]:
    async with api_client(live) as client, client.stream("GET", path) as answer:
        assert answer.status_code == 200
        opened.set()
        return [line async for line in answer.aiter_lines() if line.startswith("event:")]


def api_client(live: Live) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {live.config_token()}"}
    return httpx.AsyncClient(base_url=live.url, headers=headers, timeout=30)


async def open_streams(live: Live, path: str) -> list[asyncio.Task[list[str]]]:
    """Event streams, each on its own connection, until both processes serve one."""
    streams = []
    while connection_owners(live) != serving_processes(live) and len(streams) < 16:
        opened = asyncio.Event()
        streams.append(asyncio.create_task(event_kinds(live, path, opened)))
        await asyncio.wait_for(opened.wait(), 30)
    return streams


@pytest.mark.slow
async def test_event_streams_in_both_processes_follow_another_process(live2: Live) -> None:
    async with api_client(live2) as http:
        assert (await http.post("/api/v1/projects", json={"name": "shop"})).status_code == 201
        answer = await http.post("/api/v1/projects/shop/services", json={"name": "web"})
        assert answer.status_code == 201
    platform = Platform.open(Settings.model_validate({"data_dir": live2.data_dir}))
    try:
        deployment = await new_deployment(platform, "web")
        streams = await open_streams(live2, f"/api/v1/infra/deployments/{deployment}/events")
        assert connection_owners(live2) == serving_processes(live2)
        events = EventLog(platform.db)
        await events.append(deployment, "log", "written by another process")
        await events.append(deployment, DONE, "finished")
        kinds = await asyncio.wait_for(asyncio.gather(*streams), 30)
    finally:
        await platform.close()
    assert kinds == [["event: log", "event: done"]] * len(streams)
