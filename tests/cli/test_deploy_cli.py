"""`dockyard deploy / rollback / releases / deployments follow` as a user runs them: the real
console script against a stand-in API (Starlette under uvicorn, in a thread) that speaks the
deploy contract and records every request it received."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import selectors
import signal
import subprocess
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.live import DOCKYARD, clean_environ, dockyard, ok, one_line_error, serving

DEP_ID = "1a2b3c4d" + "0" * 20 + "beef"  # 32 hex digits, like the API's ids
IMAGE = "registry.local/shop/web:deploy_1a2b3c4d"
TOKEN = "dy_stand_in_token"


def event(seq: int, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "message": message,
            "time": f"2025-01-01T00:00:{seq:02d}Z", **extra}


def script(status: str = "succeeded", error: str | None = None) -> list[dict[str, Any]]:
    """A two-server deployment's events, ending with `status`."""
    return [
        event(1, "deployment", f"Deploying shop/web {IMAGE} to s1, s2", deployment_id=DEP_ID,
              service="web", image=IMAGE, servers=["s1", "s2"]),
        event(2, "phase", "building"),
        event(3, "log", "Step 1/3 : FROM debian-python"),
        event(4, "step", "pull started", server="s1", step="pull", state="started"),
        event(5, "warning", "s2 answers slowly", server="s2"),
        event(6, "step", "health failed" if error else "health done", server="s1",
              step="health", state="failed" if error else "done"),
        event(7, "phase", "rolling out"),
        event(8, "done", f"deployment {status}", status=status, error=error,
              deployment_id=DEP_ID),
    ]


class Dropped(Exception):
    """Raised inside a response stream: uvicorn then cuts the connection mid-body."""


@dataclass
class Received:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class StandIn:
    """The API side of the contract. `cuts[n]`: the n-th stream drops after that many
    events (None or past the list: it sends them all); `hang`: stay open after the events."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=script)
    cuts: list[int | None] = field(default_factory=list)
    refusal: tuple[int, Any] | None = None
    hang: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    streams: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/v1/infra/deploy", self.start, methods=["POST"]),
            Route("/api/v1/infra/deployments/rollback", self.start, methods=["POST"]),
            Route("/api/v1/infra/deployments/history", self.listing, methods=["GET"]),
            Route("/api/v1/infra/deployments/{id}/events", self.replay, methods=["GET"]),
            Route("/api/v1/infra/deploy-configs", self.configs, methods=["GET", "POST"]),
        ])

    async def record(self, request: Request) -> None:
        self.received.append(Received(request.method, request.url.path,
                                      list(request.query_params.multi_items()),
                                      dict(request.headers), await request.body()))

    async def start(self, request: Request) -> Response:
        await self.record(request)
        if self.refusal:
            return JSONResponse({"detail": self.refusal[1]}, status_code=self.refusal[0])
        return self.stream(0)

    async def replay(self, request: Request) -> Response:
        await self.record(request)
        if not DEP_ID.startswith(request.path_params["id"]):
            return JSONResponse({"detail": "deployment not found"}, status_code=404)
        return self.stream(int(request.headers.get("last-event-id", "0")))

    async def listing(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse(self.history)

    async def configs(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse(await request.json() if request.method == "POST" else [])

    def stream(self, after: int) -> StreamingResponse:
        cut = self.cuts[self.streams] if self.streams < len(self.cuts) else None
        self.streams += 1
        pending = [e for e in self.events if e["seq"] > after]
        return StreamingResponse(self.frames(pending, cut), media_type="text/event-stream",
                                 headers={"X-Deployment-ID": DEP_ID})

    async def frames(self, pending: list[dict[str, Any]], cut: int | None) -> AsyncIterator[str]:
        yield ": keep-alive\n\n"
        for n, data in enumerate(pending):
            if n == cut:
                raise Dropped
            yield f"id: {data['seq']}\nevent: {data['kind']}\ndata: {json.dumps(data)}\n\n"
        if self.hang:  # until the client goes away (Starlette then cancels this)
            await asyncio.sleep(60)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    stand = StandIn()
    with serving(stand.app()) as url:
        stand.url = url
        yield stand


def env_for(stand: StandIn, tmp_path: Path) -> dict[str, str]:
    return {**clean_environ(), "DOCKYARD_URL": stand.url, "DOCKYARD_TOKEN": TOKEN,
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200"}


def run(stand: StandIn, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return dockyard(*args, env=env_for(stand, tmp_path))


PLAIN = [
    f"Deploying shop/web {IMAGE} to s1, s2", "building", "  Step 1/3 : FROM debian-python",
    "s1: pull started", "warning: s2: s2 answers slowly", "s1: health done", "rolling out",
    "deployment succeeded", f"Deployed web {IMAGE}",
]


def make_app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "app.py").write_text("print('hello')\n")
    (root / "run.sh").write_text("#!/bin/sh\nexec python3 app.py\n")
    (root / "run.sh").chmod(0o755)
    (root / "sub" / "data.txt").write_text("data\n")
    (tmp_path / "secret.txt").write_text("not for upload\n")
    (root / "link").symlink_to("app.py")
    (root / "outside").symlink_to("../secret.txt")
    (root / "absolute").symlink_to(tmp_path / "secret.txt")
    return root


def test_a_directory_is_streamed_as_gzip_with_query_params(
    standin: StandIn, tmp_path: Path
) -> None:
    root = make_app(tmp_path)
    result = run(standin, tmp_path, "deploy", str(root), "-p", "shop", "-s", "web",
                 "--server", "s1", "--server", "s2", "--port", "8080", "--health-path", "/up")
    uploading, *events = ok(result).splitlines()
    assert uploading.startswith(f"Uploading {root} (5 entries, ")
    assert events == PLAIN
    assert "left out symlinks that point outside" in result.stderr
    assert "absolute, outside" in result.stderr
    [upload] = standin.received
    assert (upload.method, upload.path) == ("POST", "/api/v1/infra/deploy")
    assert upload.headers["content-type"] == "application/gzip"
    assert upload.headers["authorization"] == f"Bearer {TOKEN}"
    assert int(upload.headers["content-length"]) == len(upload.body)
    assert upload.query == [("project", "shop"), ("service", "web"), ("server", "s1"),
                            ("server", "s2"), ("port", "8080"), ("health_path", "/up")]
    assert upload.body[:2] == b"\x1f\x8b"
    with tarfile.open(fileobj=io.BytesIO(upload.body), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["app.py", "link", "run.sh", "sub", "sub/data.txt"]
        assert members["run.sh"].mode & 0o111 == 0o111
        assert members["app.py"].mode & 0o111 == 0
        assert (members["link"].issym(), members["link"].linkname) == (True, "app.py")
        data = tar.extractfile("sub/data.txt")
        assert data is not None
        assert data.read() == b"data\n"


def test_git_and_image_sources_are_sent_as_json(standin: StandIn, tmp_path: Path) -> None:
    ok(run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web",
           "--git", "https://git.example/shop.git", "--ref", "main"))
    ok(run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web", "--image", "nginx:1.27",
           "--server", "s1", "--config", "prod", "--port", "80"))
    git, image = standin.received
    assert git.headers["content-type"] == "application/json"
    assert git.json() == {
        "project": "shop", "service": "web",
        "source": {"kind": "git", "url": "https://git.example/shop.git", "ref": "main"},
        "servers": None, "config_name": None, "params": None}
    assert image.json() == {
        "project": "shop", "service": "web", "source": {"kind": "image", "image": "nginx:1.27"},
        "servers": ["s1"], "config_name": "prod", "params": {"port": 80}}
    assert image.query == []


def test_exactly_one_source_is_required(standin: StandIn, tmp_path: Path) -> None:
    one_line_error(run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web"),
                   "give exactly one source")
    one_line_error(run(standin, tmp_path, "deploy", str(tmp_path), "-p", "shop", "-s", "web",
                       "--image", "nginx"), "(got PATH and --image)")
    one_line_error(run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web", "--image", "x",
                       "--ref", "main"), "--ref only goes with --git")
    one_line_error(run(standin, tmp_path, "deploy", str(tmp_path / "nope"), "-p", "shop",
                       "-s", "web"), "is not a directory")
    assert standin.received == []


def test_a_failed_deployment_prints_the_reason_and_exits_1(
    standin: StandIn, tmp_path: Path
) -> None:
    standin.events = script("failed", "health check of s1 failed: GET /up answered 500")
    result = run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web", "--image", "x:1")
    one_line_error(result, f"deployment {DEP_ID} failed",
                   "health check of s1 failed: GET /up answered 500")
    assert "s1: health failed" in result.stdout.splitlines()
    assert "Deployed" not in result.stdout


def test_json_prints_each_event_as_one_line(standin: StandIn, tmp_path: Path) -> None:
    result = run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web", "--image", "x:1",
                 "--json")
    assert [json.loads(line) for line in ok(result).splitlines()] == standin.events


def test_refusals_are_one_line(standin: StandIn, tmp_path: Path) -> None:
    busy = ("service shop/web is being deployed by deployment 1a2b3c4d; wait for it or "
            "follow it with `dockyard deployments follow 1a2b3c4d`")
    standin.refusal = (409, busy)
    one_line_error(run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web", "--image", "x"),
                   busy, "HTTP 409")
    standin.refusal = (422, [{"loc": ["body", "params", "port"], "msg": "too large",
                              "type": "less_than_equal"}])
    one_line_error(run(standin, tmp_path, "rollback", "-p", "shop", "-s", "web"),
                   "params.port: too large", "HTTP 422")


def test_rollback_names_the_release_or_takes_the_previous(
    standin: StandIn, tmp_path: Path
) -> None:
    assert ok(run(standin, tmp_path, "rollback", "9f8e", "-p", "shop", "-s", "web")).endswith(
        f"Deployed web {IMAGE}\n")
    ok(run(standin, tmp_path, "rollback", "-p", "shop", "-s", "web"))
    named, previous = standin.received
    assert named.path == "/api/v1/infra/deployments/rollback"
    assert named.json() == {"project": "shop", "service": "web", "release": "9f8e"}
    assert previous.json() == {"project": "shop", "service": "web", "release": None}


def test_releases_table_marks_the_live_release(standin: StandIn, tmp_path: Path) -> None:
    row = {"service": "web", "project": "shop", "source": {}, "rollback_of": None,
           "started_at": None, "created_at": "2025-01-02T00:00:00Z"}
    standin.history = [
        {**row, "id": "a" * 32, "status": "failed", "source_kind": "git",
         "image_tag": "web:deploy_aaaaaaaa", "finished_at": None, "error": "x" * 100,
         "live": False},
        {**row, "id": "b" * 32, "status": "succeeded", "source_kind": "archive",
         "image_tag": "web:deploy_bbbbbbbb", "finished_at": "2025-01-02T00:01:00Z",
         "error": None, "live": True, "config": {"links": [
             {"service": "postgres-analytics", "variable": "DATABASE_ANALYTICS_URL",
              "given_by": None},
             {"service": "redis-logs", "variable": "REDIS_LOGS_URL", "given_by": None},
             {"service": "postgres", "variable": "DATABASE_URL", "given_by": "you"}]}},
    ]
    narrow = {**env_for(standin, tmp_path), "COLUMNS": "80"}
    table = ok(dockyard("releases", "-p", "shop", "-s", "web", "--limit", "5", env=narrow))
    rows = [line.split() for line in table.splitlines() if "deploy_" in line]
    assert [row[:3] for row in rows] == [["aaaaaaaa", "failed", "git"],
                                         ["*", "bbbbbbbb", "succeeded"]]
    assert table.splitlines()[-2:] == [  # under the table
        "bbbbbbbb linked: postgres-analytics (DATABASE_ANALYTICS_URL), redis-logs",
        "  (REDIS_LOGS_URL), postgres (not injected: DATABASE_URL yours)"]
    assert max(len(line) for line in table.splitlines()) <= 80
    folded = "".join(table.split())  # the error is cut to 60 characters, then folded
    assert "x" * 57 in folded
    assert "x" * 58 not in folded
    assert "a" * 9 not in table
    raw = json.loads(ok(run(standin, tmp_path, "releases", "-p", "shop", "-s", "web",
                            "--json")))
    assert raw == standin.history
    assert standin.received[0].query == [("project", "shop"), ("service", "web"),
                                         ("limit", "5")]


def test_a_dropped_deploy_stream_resumes_with_last_event_id(
    standin: StandIn, tmp_path: Path
) -> None:
    standin.cuts = [3]
    result = run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web", "--image", "x:1")
    assert ok(result).splitlines() == PLAIN
    post, resumed = standin.received
    assert resumed.path == f"/api/v1/infra/deployments/{DEP_ID}/events"
    assert resumed.headers["last-event-id"] == "3"
    assert "last-event-id" not in post.headers


def test_follow_replays_and_resumes_after_drops(standin: StandIn, tmp_path: Path) -> None:
    standin.cuts = [2, 0, 3]
    result = run(standin, tmp_path, "deployments", "follow", "1a2b3c4d", "--json")
    assert [json.loads(line)["seq"] for line in ok(result).splitlines()] == list(range(1, 9))
    assert [r.path.split("/")[-2] for r in standin.received] == ["1a2b3c4d"] + [DEP_ID] * 3
    assert [r.headers.get("last-event-id") for r in standin.received] == [None, "2", "2", "5"]


def test_a_stream_that_never_finishes_fails_after_five_reconnects(
    standin: StandIn, tmp_path: Path
) -> None:
    standin.cuts = [2] + [0] * 10
    result = run(standin, tmp_path, "deployments", "follow", DEP_ID)
    one_line_error(result, "5 reconnects", f"dockyard deployments follow {DEP_ID}")
    assert len(standin.received) == 6
    assert result.stdout.splitlines() == PLAIN[:2]


def read_until(process: subprocess.Popen[bytes], text: bytes, timeout: float = 30) -> bytes:
    assert process.stdout is not None
    seen, deadline = b"", time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while text not in seen:
            assert time.monotonic() < deadline, f"{text!r} not printed; got {seen!r}"
            if selector.select(0.1):
                seen += os.read(process.stdout.fileno(), 4096)
    return seen


def test_ctrl_c_stops_following_but_not_the_deployment(
    standin: StandIn, tmp_path: Path
) -> None:
    standin.hang, standin.events = True, script()[:-1]
    process = subprocess.Popen(
        [DOCKYARD, "deploy", "-p", "shop", "-s", "web", "--image", "x:1"],
        env=env_for(standin, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        read_until(process, b"rolling out")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Traceback" not in stderr.decode()
    assert f"deployment {DEP_ID} continues on the server" in stderr.decode()
    assert f"`dockyard deployments follow {DEP_ID}`" in stderr.decode()


def test_a_terminal_gets_a_live_ascii_display(standin: StandIn, tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [DOCKYARD, "deploy", "-p", "shop", "-s", "web", "--image", "x:1"],
        env={**env_for(standin, tmp_path), "TERM": "xterm", "COLUMNS": "100"},
        stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    screen, deadline = b"", time.monotonic() + 30
    while chunk := _read_pty(leader):
        screen += chunk
        assert time.monotonic() < deadline, f"the command did not finish: {screen!r}"
    os.close(leader)
    assert process.wait(timeout=30) == 0
    assert screen.isascii()
    text = screen.decode()
    assert "Step 1/3 : FROM debian-python" in text
    assert "warning: s2: s2 answers slowly" in text
    assert f"Deployed web {IMAGE}" in text
    assert "\x1b[" in text  # a live display, not plain lines


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the command exited and closed the terminal
        return b""


def test_deploy_configs_list_and_save(standin: StandIn, tmp_path: Path) -> None:
    saved = ok(run(standin, tmp_path, "deploy-configs", "save", "prod", "-p", "shop", "-s",
                   "web", "--port", "8080", "--health-path", "/up", "--json"))
    assert json.loads(saved)["params"] == {"port": 8080, "health_path": "/up"}
    assert json.loads(ok(run(standin, tmp_path, "deploy-configs", "list", "--json"))) == []
    assert standin.received[0].json() == {
        "name": "prod", "service": {"project": "shop", "service": "web"},
        "params": {"port": 8080, "health_path": "/up"}}


# Build flags: --root --dockerfile --build-arg (the build arguments repeated in an upload).

FLAGS = ("--root", "services/web", "--dockerfile", "docker/web.Dockerfile",
         "--build-arg", "NODE_ENV=production", "--build-arg", "GREETING=hi there")


def test_an_archive_upload_carries_the_build_flags(standin: StandIn, tmp_path: Path
                                                   ) -> None:
    ok(run(standin, tmp_path, "deploy", str(make_app(tmp_path)), "-p", "shop", "-s", "web",
           *FLAGS))
    [upload] = standin.received
    assert upload.query == [("project", "shop"), ("service", "web"),
                            ("build_arg", "NODE_ENV=production"),
                            ("build_arg", "GREETING=hi there"), ("root", "services/web"),
                            ("dockerfile", "docker/web.Dockerfile")]


def test_a_git_deploy_carries_them_as_params(standin: StandIn, tmp_path: Path
                                             ) -> None:
    ok(run(standin, tmp_path, "deploy", "-p", "shop", "-s", "web",
           "--git", "https://git.example/shop.git", *FLAGS))
    [git] = standin.received
    assert git.json()["params"] == {
        "root": "services/web", "dockerfile": "docker/web.Dockerfile",
        "build_args": ["NODE_ENV=production", "GREETING=hi there"]}
