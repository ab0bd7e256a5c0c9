"""Agent traffic is TLS to a pinned certificate: a real `dockyard-agent` process, its own
self-signed certificate, and the control plane's client that checks the fingerprint."""

from __future__ import annotations

import asyncio
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dockyard.agent import auth, tls
from dockyard.agent.client import NodeAgentClient
from tests.agent.conftest import AGENT_PROGRAM, SECRET, AgentProcess

KEY = auth.derive_agent_key(SECRET)
StartAgent = Callable[..., AgentProcess]


def test_the_certificate_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    files = tls.CertificateFiles(tmp_path)
    first = tls.ensure_certificate(files)
    assert tls.ensure_certificate(files) == first
    assert len(first) == 95
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    assert tls.ensure_certificate(tls.CertificateFiles(tmp_path / "other")) != first


async def test_a_pinned_client_talks_tls_and_the_agent_prints_its_fingerprint(
    agent_processes: StartAgent
) -> None:
    agent = agent_processes(KEY)
    presented = tls.fetch_fingerprint(agent.host, agent.port)
    printed = await asyncio.create_subprocess_exec(
        AGENT_PROGRAM, "fingerprint", stdout=asyncio.subprocess.PIPE,
        env={"DOCKYARD_AGENT_STATE_DIR": str(agent.state_dir)})
    assert (await printed.communicate())[0].decode().strip() == presented
    assert presented in agent.log
    async with NodeAgentClient(agent.url, SECRET, fingerprint=presented) as client:
        assert (await client.info()).cpus >= 1
    async with httpx.AsyncClient(timeout=5) as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(f"http://{agent.host}:{agent.port}/info")


async def test_another_certificate_is_refused_naming_both_fingerprints(
    agent_processes: StartAgent, tmp_path: Path
) -> None:
    agent = agent_processes(KEY)
    presented = tls.fetch_fingerprint(agent.host, agent.port)
    pinned = tls.ensure_certificate(tls.CertificateFiles(tmp_path / "impostor"))
    async with NodeAgentClient(agent.url, SECRET, fingerprint=pinned) as client:
        with pytest.raises(httpx.ConnectError) as refused:
            await client.info()
    assert presented in str(refused.value)
    assert pinned in str(refused.value)


async def test_no_request_byte_reaches_an_impostor(tmp_path: Path) -> None:
    """The pin is checked right after the handshake: a server with another certificate
    reads nothing of the request (no path, no signature, no body)."""
    files = tls.CertificateFiles(tmp_path / "impostor")
    tls.ensure_certificate(files)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.certificate, files.private_key)
    received: list[bytes] = []
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.read())
        except (OSError, ssl.SSLError):
            received.append(b"")
        writer.close()
        closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    honest = tls.ensure_certificate(tls.CertificateFiles(tmp_path / "honest"))
    async with server, NodeAgentClient(f"https://127.0.0.1:{port}", SECRET,
                                       fingerprint=honest) as client:
        with pytest.raises(httpx.ConnectError):
            await client._call("POST", "/containers", body={"env": {"SECRET": "hunter2"}})
        await asyncio.wait_for(closed.wait(), 5)
    assert b"hunter2" not in b"".join(received)
    assert b"POST" not in b"".join(received)


async def test_an_ipv6_agent_is_reached_in_brackets(agent_processes: StartAgent) -> None:
    agent = agent_processes(KEY, host="::1")
    assert agent.url.startswith("https://[::1]:")
    presented = tls.fetch_fingerprint("::1", agent.port)
    async with NodeAgentClient(agent.url, SECRET, fingerprint=presented) as client:
        assert (await client.info()).cpus >= 1


async def test_plain_http_only_when_the_agent_runs_without_tls(
    agent_processes: StartAgent
) -> None:
    agent = agent_processes(KEY, tls=False)
    assert "TLS is off" in agent.log
    async with NodeAgentClient(agent.url, SECRET) as client:
        assert (await client.info()).cpus >= 1


async def test_an_agent_without_a_pin_is_never_called(agent_processes: StartAgent) -> None:
    agent = agent_processes(KEY)
    async with NodeAgentClient(agent.url, SECRET) as client:
        with pytest.raises(httpx.ConnectError, match="no certificate fingerprint is pinned"):
            await client.info()
