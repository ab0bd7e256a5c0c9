"""`dockyard ps / restart / run` as a user runs them: the real console script against a
stand-in API that speaks the processes contract and records what it received."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.cli.test_deploy_cli import DEP_ID, TOKEN, script
from tests.live import clean_environ, dockyard, ok, one_line_error, serving

SVC = "/api/v1/projects/shop/services/web"
RELEASE = "9f8e7d6c" + "0" * 24
NOW = "2026-12-01T10:00:00.123456789Z"
LISTING = {
    "processes": [
        {"server": "node-with-a-long-name-1", "type": "web", "replica": 1, "release": RELEASE,
         "name": "shop-web-9f8e7d6c", "state": "running", "started_at": NOW, "restarts": 3,
         "memory_bytes": 52_428_800, "exit_code": None, "oom_killed": False},
        {"server": "node-2", "type": "web", "replica": 1, "release": RELEASE,
         "name": "shop-web-9f8e7d6c", "state": "exited", "started_at": NOW, "restarts": 0,
         "memory_bytes": None, "exit_code": 137, "oom_killed": True},
    ],
    "unreachable": [{"server": "node-3", "error": "agent answered 503: docker is down"}],
    "drift": [{"server": "node-2", "subject": "shop-web-0badc0de", "since": NOW,
               "message": "stray container shop-web-0badc0de of failed deployment 0badc0de "
                          "(removed after the grace period)"}],
}


def sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


@dataclass
class StandIn:
    url: str = ""
    run_events: list[str] = field(default_factory=list)
    received: list[tuple[str, str, bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route(f"{SVC}/processes", self.processes, methods=["GET"]),
            Route(f"{SVC}/run", self.run, methods=["POST"]),
            Route(f"{SVC}/restart", self.restart, methods=["POST"]),
            Route(f"{SVC}/scale", self.restart, methods=["POST"]),
        ])

    async def record(self, request: Request) -> None:
        query = f"?{request.url.query}" if request.url.query else ""
        self.received.append((request.method, request.url.path + query, await request.body()))

    async def processes(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse(LISTING)

    async def run(self, request: Request) -> Response:
        await self.record(request)
        return StreamingResponse(iter(self.run_events), media_type="text/event-stream")

    async def restart(self, request: Request) -> Response:
        await self.record(request)
        frames = [f"id: {e['seq']}\nevent: {e['kind']}\ndata: {json.dumps(e)}\n\n"
                  for e in script()]
        return StreamingResponse(iter(frames), media_type="text/event-stream",
                                 headers={"X-Deployment-ID": DEP_ID})


@pytest.fixture
def standin() -> Iterator[StandIn]:
    stand = StandIn()
    with serving(stand.app()) as url:
        stand.url = url
        yield stand


def run(stand: StandIn, tmp_path: Path, *args: str, columns: int = 80) -> Any:
    env = {**clean_environ(), "DOCKYARD_URL": stand.url, "DOCKYARD_TOKEN": TOKEN,
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": str(columns)}
    return dockyard(*args, env=env)


def test_ps_fits_80_columns_and_names_the_servers_that_did_not_answer(
        standin: StandIn, tmp_path: Path) -> None:
    result = run(standin, tmp_path, "ps", "-p", "shop", "-s", "web")
    table = ok(result)
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "…" not in table
    assert "9f8e7d6c" in table
    assert RELEASE not in table
    assert "137 OOM" in table
    assert "50M" in table
    assert "node-3 did not answer: agent answered 503: docker is down" in result.stderr
    assert result.stderr.splitlines()[-2:] == [
        "server node-2 differs: stray container shop-web-0badc0de of failed deployment",
        "  0badc0de (removed after the grace period)"]


def test_ps_json_is_the_whole_listing(standin: StandIn, tmp_path: Path) -> None:
    assert json.loads(ok(run(standin, tmp_path, "ps", "-p", "shop", "-s", "web", "--json"))
                      ) == LISTING


def test_run_sends_argv_after_the_dashes_streams_output_and_exits_with_its_code(
        standin: StandIn, tmp_path: Path) -> None:
    standin.run_events = [sse("started", {"container": "c", "server": "n"}),
                          sse("output", {"text": "hel"}), sse("output", {"text": "lo\n"}),
                          sse("exit", {"exit_code": 3, "timed_out": False})]
    result = run(standin, tmp_path, "run", "-p", "shop", "-s", "web", "--timeout", "5", "--",
                 "python3", "-c", "print('x'); raise SystemExit(3)")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hello\n"
    [(method, path, body)] = standin.received
    assert (method, path) == ("POST", f"{SVC}/run")
    assert json.loads(body) == {"command": ["python3", "-c", "print('x'); raise SystemExit(3)"],
                                "server": None, "timeout_seconds": 5}


def test_run_says_when_the_time_limit_killed_the_command(standin: StandIn,
                                                          tmp_path: Path) -> None:
    standin.run_events = [sse("started", {"container": "c", "server": "n"}),
                          sse("exit", {"exit_code": 137, "timed_out": True})]
    result = run(standin, tmp_path, "run", "-p", "shop", "-s", "web", "--", "sleep", "99")
    assert result.returncode == 137
    assert "time limit" in result.stderr


@pytest.mark.parametrize("events", [
    [sse("started", {"container": "c", "server": "n"}), sse("error", {"message": "lost it"})],
    [sse("started", {"container": "c", "server": "n"}), sse("output", {"text": "x"})]])
def test_a_run_that_ends_without_an_exit_fails_with_one_line(
        standin: StandIn, tmp_path: Path, events: list[str]) -> None:
    standin.run_events = events
    result = run(standin, tmp_path, "run", "-p", "shop", "-s", "web", "--", "true")
    assert result.returncode == 1
    one_line_error(result)


def test_restart_follows_the_rollout_it_started(standin: StandIn, tmp_path: Path) -> None:
    result = run(standin, tmp_path, "restart", "-p", "shop", "-s", "web")
    assert "deployment succeeded" in ok(result)
    assert [(m, p) for m, p, _ in standin.received] == [("POST", f"{SVC}/restart")]


def test_restart_of_one_process_type_names_it(standin: StandIn, tmp_path: Path) -> None:
    result = run(standin, tmp_path, "restart", "worker", "-p", "shop", "-s", "web")
    assert "deployment succeeded" in ok(result)
    assert [(m, p) for m, p, _ in standin.received] == [("POST", f"{SVC}/restart?type=worker")]


def test_scale_sends_the_replicas_and_follows_the_rollout(standin: StandIn,
                                                          tmp_path: Path) -> None:
    result = run(standin, tmp_path, "scale", "web=3", "worker=2", "-p", "shop", "-s", "web")
    assert "deployment succeeded" in ok(result)
    assert [(m, p, json.loads(b)) for m, p, b in standin.received] == [
        ("POST", f"{SVC}/scale", {"scale": {"web": 3, "worker": 2}})]


def test_scale_refuses_what_is_not_type_equals_number(standin: StandIn, tmp_path: Path) -> None:
    result = run(standin, tmp_path, "scale", "web3", "-p", "shop", "-s", "web")
    assert one_line_error(result) == "error: 'web3' is not TYPE=N (for example web=3)"
    assert standin.received == []
