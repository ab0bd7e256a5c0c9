"""Every agent request is signed, fresh and used once; anything else is a logged 401."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.kernel.context import bind_request_id
from tests.agent.conftest import SECRET, signed_headers


@pytest.fixture
async def raw(agent_transport: httpx.ASGITransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=agent_transport, base_url="http://agent.test")


async def test_a_signed_request_is_answered(agent: NodeAgentClient) -> None:
    info = await agent.info()
    assert info.docker_version == "unreachable"
    assert info.cpus >= 1
    assert info.memory_bytes > 0
    assert info.uptime_seconds > 0


async def test_health_is_public(raw: httpx.AsyncClient) -> None:
    assert (await raw.get("/healthz")).status_code == 200


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing signature"),
    ({"X-Dockyard-Timestamp": "x", "X-Dockyard-Nonce": "0123456789", "X-Dockyard-Signature": "0",
      "X-Dockyard-Content-SHA256": "0" * 64}, "malformed signature headers"),
])
async def test_unsigned_or_malformed_requests_are_refused(
    raw: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    answer = await raw.get("/info", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"detail": f"not authenticated: {reason}"}


async def test_a_request_signed_with_another_secret_is_refused(raw: httpx.AsyncClient) -> None:
    answer = await raw.get("/info", headers=signed_headers("guessed", "GET", "/info"))
    assert answer.status_code == 401
    assert answer.json()["detail"] == "not authenticated: wrong signature"


async def test_an_expired_signature_is_refused(raw: httpx.AsyncClient) -> None:
    stale = int(time.time()) - 301
    answer = await raw.get("/info", headers=signed_headers(SECRET, "GET", "/info", timestamp=stale))
    assert answer.json()["detail"] == "not authenticated: signature expired"


async def test_a_replayed_request_is_refused(raw: httpx.AsyncClient) -> None:
    headers = signed_headers(SECRET, "GET", "/info")
    assert (await raw.get("/info", headers=headers)).status_code == 200
    again = await raw.get("/info", headers=headers)
    assert again.status_code == 401
    assert again.json()["detail"] == "not authenticated: replayed signature"


async def test_a_body_other_than_the_signed_one_is_refused(raw: httpx.AsyncClient) -> None:
    headers = signed_headers(SECRET, "POST", "/images/prune", b'{"keep": 5}')
    answer = await raw.post("/images/prune", content=b'{"keep": 1}', headers=headers)
    assert answer.status_code == 400
    assert answer.json() == {"detail": "the request body does not match its signed digest"}


async def test_the_query_is_signed_too(raw: httpx.AsyncClient) -> None:
    headers = signed_headers(SECRET, "GET", "/volumes?service=web")
    answer = await raw.get("/volumes?service=api", headers=headers)
    assert answer.status_code == 401


async def test_refusals_are_logged_with_the_correlation_id(
    raw: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dockyard.agent.auth"):
        await raw.get("/info", headers={"X-Request-ID": "deploy-42.step-3"})
    [record] = [r for r in caplog.records if r.name == "dockyard.agent.auth"]
    assert record.getMessage() == "agent request refused: missing signature"
    assert record.request_id == "deploy-42.step-3"  # type: ignore[attr-defined]


async def test_the_client_sends_the_current_correlation_id(
    agent_transport: httpx.ASGITransport, caplog: pytest.LogCaptureFixture
) -> None:
    bind_request_id("from-the-control-plane")
    async with NodeAgentClient("http://agent.test", "wrong", transport=agent_transport) as wrong:
        with caplog.at_level(logging.WARNING, logger="dockyard.agent.auth"), pytest.raises(
            AgentError
        ):
            await wrong.info()
    [record] = [r for r in caplog.records if r.name == "dockyard.agent.auth"]
    assert record.request_id == "from-the-control-plane"  # type: ignore[attr-defined]


async def test_rotation_moves_the_agent_to_the_new_key_and_locks_out_the_old(
    agent: NodeAgentClient, agent_transport: httpx.ASGITransport
) -> None:
    await agent.rotate_key("next-secret")
    assert (await agent.info()).cpus >= 1
    async with NodeAgentClient("http://agent.test", SECRET, transport=agent_transport) as old:
        with pytest.raises(AgentError) as refused:
            await old.info()
    assert refused.value.status_code == 401


async def test_a_rotation_not_sealed_with_the_current_key_is_refused(
    agent: NodeAgentClient
) -> None:
    thief_sealed = auth.seal_key(auth.derive_agent_key("thief"), auth.derive_agent_key("mine"))
    with pytest.raises(AgentError) as refused:
        await agent._call("POST", "/auth/rotate", body={"sealed_key": thief_sealed})
    assert refused.value.status_code == 422
    assert (await agent.info()).cpus >= 1
