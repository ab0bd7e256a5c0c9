"""The agent's edge: signature before body, body caps per route, the signed digest checked
while the body streams, nonces that survive a restart, and hostile names refused with 422."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.types import Message

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.settings import AgentSettings
from tests.agent.conftest import SECRET, signed_headers

UPLOAD = "/images/import?repository=shop%2Fweb&tag=v1"


async def call_app(settings: AgentSettings, method: str, path: str, headers: dict[str, str],
                   receive: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """One request straight into the agent's ASGI app, with the server side played by
    `receive`; returns the status and the JSON answer."""
    app = create_app(settings)
    raw_path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "path": raw_path, "raw_path": raw_path.encode(),
             "query_string": query.encode(), "scheme": "http", "server": ("agent.test", 80),
             "client": ("10.0.0.9", 5000), "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body) if body else {}


def endless_body(reads: list[int], chunk: int = 1024 * 1024) -> Callable[[], Any]:
    async def receive() -> Message:
        reads.append(chunk)
        return {"type": "http.request", "body": b"x" * chunk, "more_body": True}

    return receive


async def test_an_unsigned_upload_is_refused_before_a_byte_of_it_is_read(
    agent_settings: AgentSettings
) -> None:
    reads: list[int] = []
    status, answer = await call_app(agent_settings, "POST", UPLOAD,
                                    {"transfer-encoding": "chunked"}, endless_body(reads))
    assert (status, answer) == (401, {"detail": "not authenticated: missing signature"})
    assert reads == []


async def test_a_stale_signed_upload_costs_nothing_either(agent_settings: AgentSettings) -> None:
    reads: list[int] = []
    headers = signed_headers(SECRET, "POST", UPLOAD, b"whatever", timestamp=1_000_000_000)
    status, answer = await call_app(agent_settings, "POST", UPLOAD, headers, endless_body(reads))
    assert (status, answer["detail"]) == (401, "not authenticated: signature expired")
    assert reads == []


async def test_a_signed_body_over_the_route_cap_is_refused_with_413(
    agent_settings: AgentSettings
) -> None:
    settings = agent_settings.model_copy(update={"max_body_bytes": 4096})
    reads: list[int] = []
    path = "/images/prune"
    headers = signed_headers(SECRET, "POST", path, b"{}")
    status, answer = await call_app(settings, "POST", path, headers, endless_body(reads, 1024))
    assert status == 413
    assert "4096" in answer["detail"]
    assert len(reads) <= 5
    declared = {**signed_headers(SECRET, "POST", path, b"{}"), "content-length": "5000"}
    status, _ = await call_app(settings, "POST", path, declared, endless_body(reads))
    assert status == 413


async def test_uploads_have_their_own_larger_cap(agent_settings: AgentSettings) -> None:
    settings = agent_settings.model_copy(update={"max_body_bytes": 4096,
                                                  "max_upload_bytes": 8192})
    reads: list[int] = []
    headers = signed_headers(SECRET, "POST", UPLOAD, b"")
    status, answer = await call_app(settings, "POST", UPLOAD, headers, endless_body(reads, 1024))
    assert status == 413
    assert "8192" in answer["detail"]
    assert 8 <= len(reads) <= 10


async def test_a_digest_header_that_is_not_hex_is_malformed(
    agent_transport: httpx.ASGITransport
) -> None:
    headers = {**signed_headers(SECRET, "GET", "/info"), auth.DIGEST_HEADER: "0" * 63 + "\n"}
    async with httpx.AsyncClient(transport=agent_transport, base_url="http://agent.test") as raw:
        answer = await raw.get("/info", headers=headers)
    assert answer.json() == {"detail": "not authenticated: malformed signature headers"}


async def test_a_request_replayed_after_an_agent_restart_is_refused(
    agent_settings: AgentSettings
) -> None:
    headers = signed_headers(SECRET, "GET", "/info")
    for expected in (200, 401):
        transport = httpx.ASGITransport(app=create_app(agent_settings))  # a fresh agent
        async with httpx.AsyncClient(transport=transport, base_url="http://agent.test") as raw:
            answer = await raw.get("/info", headers=headers)
        assert answer.status_code == expected
    assert answer.json()["detail"] == "not authenticated: replayed signature"


def test_the_nonce_journal_keeps_only_what_is_inside_the_window(tmp_path: Any) -> None:
    journal = tmp_path / "nonces"
    first = auth.NonceCache(300, journal=journal)
    assert first.first_use("old-nonce-1", 1000)
    assert first.first_use("new-nonce-1", 1500)
    again = auth.NonceCache(300, journal=journal, now=1700)
    assert not again.first_use("new-nonce-1", 1700)
    assert journal.read_text().split() == ["1500", "new-nonce-1"]


@pytest.mark.parametrize("repository", ["../x", "..", "a/../b", "shop/web\n"])
async def test_prune_refuses_a_repository_that_is_not_a_name(
    agent: NodeAgentClient, repository: str
) -> None:
    with pytest.raises(AgentError) as refused:
        await agent._call("POST", "/images/prune", body={"keep": 1, "repository": repository})
    assert refused.value.status_code == 422
    assert "repository" in refused.value.detail


@pytest.mark.parametrize("dockerfile", ["../Dockerfile", "a/../../Dockerfile", "/etc/passwd",
                                        "./..", "Dockerfile\n"])
async def test_build_refuses_a_dockerfile_outside_the_context(
    agent: NodeAgentClient, dockerfile: str
) -> None:
    params = {"repository": "shop/web", "tag": "v1", "dockerfile": dockerfile}
    with pytest.raises(AgentError) as refused:
        await agent._call("POST", "/images/build", upload=b"", params=params)
    assert refused.value.status_code == 422
    assert "dockerfile" in refused.value.detail


async def test_an_upload_other_than_the_signed_one_fails_when_it_ends(
    agent_transport: httpx.ASGITransport
) -> None:
    headers = signed_headers(SECRET, "POST", UPLOAD, b"the signed rootfs")
    async with httpx.AsyncClient(transport=agent_transport, base_url="http://agent.test") as raw:
        answer = await raw.post(UPLOAD, content=b"another rootfs", headers=headers)
    assert answer.status_code == 400
    assert answer.json() == {"detail": "the request body does not match its signed digest"}
