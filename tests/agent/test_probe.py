"""`POST /probe`: one GET from the node; a failed connection is an answer, not an error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import ProbeRequest
from tests.agent.conftest import free_port, signed_headers

RELEASE = threading.Event()


class Routes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            RELEASE.wait(10)
        status = {"/ok?x=1&y=%2F": 200, "/moved": 302, "/slow": 200}.get(self.path, 404)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/missing")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app_port() -> Iterator[int]:
    RELEASE.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Routes)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    RELEASE.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("path", "ok", "status"), [
    ("/ok?x=1&y=%2F", True, 200), ("/moved", True, 302), ("/missing", False, 404)])
async def test_the_status_decides_and_redirects_are_not_followed(
    agent: NodeAgentClient, app_port: int, path: str, ok: bool, status: int
) -> None:
    result = await agent.probe(app_port, path)
    assert (result.ok, result.status, result.error) == (ok, status, None)
    assert result.elapsed_ms > 0


async def test_a_closed_port_is_a_failed_probe(agent: NodeAgentClient) -> None:
    result = await agent.probe(free_port(), "/")
    assert (result.ok, result.status) == (False, None)
    assert result.error is not None
    assert result.error.startswith("ConnectError")


async def test_a_slow_answer_is_a_timed_out_probe(agent: NodeAgentClient, app_port: int) -> None:
    result = await agent.probe(app_port, "/slow", timeout_seconds=0.2)
    assert (result.ok, result.status) == (False, None)
    assert result.error is not None
    assert result.error.startswith("ReadTimeout")
    assert 200 <= result.elapsed_ms < 5000


GOOD: dict[str, Any] = {"port": 8000, "path": "/healthz"}


@pytest.mark.parametrize("changes", [
    {"path": "healthz"}, {"path": "/a b"}, {"path": "/a\r\nHost: evil"}, {"path": "/a#b"},
    {"path": "/<script>"}, {"path": "/" + "a" * 1024}, {"port": 0}, {"port": 65536},
    {"timeout_seconds": 0}, {"timeout_seconds": 61}, {"host": "a;b"}, {"method": "POST"},
])
def test_hostile_probes_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ProbeRequest.model_validate({**GOOD, **changes})


def test_probe_defaults_and_limits() -> None:
    probe = ProbeRequest.model_validate({**GOOD, "path": "/" + "a" * 1023})
    assert (probe.timeout_seconds, probe.host, len(probe.path)) == (2, "127.0.0.1", 1024)
    assert ProbeRequest(port=1, path="/-._~/?=&%").path == "/-._~/?=&%"


async def test_the_endpoint_refuses_a_hostile_path(agent_transport: httpx.ASGITransport) -> None:
    body = json.dumps({**GOOD, "path": "/a b"}).encode()
    async with httpx.AsyncClient(transport=agent_transport, base_url="http://a.test") as raw:
        answer = await raw.post("/probe", content=body, headers={
            **signed_headers("workspace-agent-secret", "POST", "/probe", body),
            "content-type": "application/json"})
    assert answer.status_code == 422
