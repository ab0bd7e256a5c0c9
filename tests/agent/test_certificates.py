"""Certificates and ACME challenges on a real nginx pair (no Docker): installed, replaced and
removed with no reload of either layer, served by SNI to a client that trusts only the test
authority; what cannot be served is refused with 422 before anything is written."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dockyard.agent import certs
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import CertificateInstall, Site
from dockyard.agent.node import Node
from dockyard.agent.proxy import Nginx
from dockyard.agent.settings import AgentSettings
from dockyard.kernel.errors import InvalidInput
from tests.agent.conftest import signed_headers
from tests.agent.test_sites import written_files
from tests.agent.test_switch import HOST, nginx_processes, node_of, serving
from tests.agent.tls_ca import Authority, key_pem, new_key

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = f"{TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture
def sites() -> Iterator[dict[str, Site]]:
    with serving("a") as upstream:
        yield {"a": Site(service="web", server_names=[HOST], upstreams=[upstream])}


@pytest.fixture
async def served(nginx: Nginx, tmp_path: Path, sites: dict[str, Site]) -> Node:
    """A node whose site `web` answers "a" at shop.test."""
    node = node_of(nginx, tmp_path)
    await node.apply_site(sites["a"])
    return node


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    leaf_sha256: str | None = None


def parse(raw: bytes, leaf: bytes | None = None) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    sha = hashlib.sha256(leaf).hexdigest() if leaf else None
    return Answer(int(lines[0].split()[1]), headers, body.decode(), sha)


def request(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()


def read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def https_get(nginx: Nginx, authority: Authority, name: str = HOST, path: str = "/") -> Answer:
    """One request over a new TLS connection with `name` as SNI and Host; the server's
    certificate must chain to the test authority and cover `name`."""
    context = ssl.create_default_context(cadata=authority.pem)
    with socket.create_connection(("127.0.0.1", nginx.layout.https_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(request(name, path))
        return parse(read_all(tls), tls.getpeercert(binary_form=True))


def http_get(nginx: Nginx, name: str = HOST, path: str = "/") -> Answer:
    with socket.create_connection(("127.0.0.1", nginx.layout.http_port), timeout=10) as raw:
        raw.sendall(request(name, path))
        return parse(read_all(raw))


def handshake_fails(nginx: Nginx, authority: Authority, name: str = HOST) -> bool:
    try:
        https_get(nginx, authority, name)
    except (ssl.SSLError, ConnectionResetError):
        return True
    return False


async def test_a_certificate_is_served_and_renewed_without_any_reload(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    before = nginx_processes(nginx)
    assert handshake_fails(nginx, authority)
    first = authority.issue(HOST)
    await served.install_certificate(HOST, first.install())
    answer = https_get(nginx, authority)
    assert (answer.status, answer.body, answer.leaf_sha256) == (200, "a", first.sha256)
    renewed = authority.issue(HOST)
    await served.install_certificate(HOST, renewed.install())
    assert https_get(nginx, authority).leaf_sha256 == renewed.sha256
    assert nginx_processes(nginx) == before


async def handshakes_until(port: int, authority: Authority, stop: asyncio.Event,
                           seen: Counter[str]) -> None:
    """New TLS connections one after another, never retried; a failure is counted."""
    context = ssl.create_default_context(cadata=authority.pem)
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                      server_hostname=HOST)
        except (OSError, ssl.SSLError) as exc:
            seen[f"failed: {exc!r}"] += 1
            continue
        leaf = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen[hashlib.sha256(leaf).hexdigest()] += 1
        writer.close()


async def test_renewals_with_the_same_key_fail_no_handshake(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    """Every renewal is one file renamed into place; nginx reads it twice per handshake
    (certificate, then key), so only a new key could meet an old certificate."""
    key = new_key()
    await served.install_certificate(HOST, authority.issue(HOST, key=key).install())
    seen: Counter[str] = Counter()
    stop = asyncio.Event()
    clients = [handshakes_until(nginx.layout.https_port, authority, stop, seen)
               for _ in range(8)]

    async def renew() -> list[str]:
        renewed = []
        for _ in range(10):
            issued = authority.issue(HOST, key=key)
            await served.install_certificate(HOST, issued.install())
            renewed.append(issued.sha256)
            await asyncio.sleep(0.05)
        stop.set()
        return renewed

    *_, renewed = await asyncio.gather(*clients, renew())
    assert [kind for kind in seen if kind.startswith("failed")] == []
    assert seen[renewed[-1]] > 0
    assert sum(seen.values()) > 100


async def test_the_app_hears_that_the_client_came_over_https(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    await served.install_certificate(HOST, authority.issue(HOST).install())
    headers = json.loads(https_get(nginx, authority, path="/headers").body)
    assert (headers["Host"], headers["X-Forwarded-Proto"]) == (HOST, "https")


async def test_http_is_redirected_only_once_a_certificate_asks_for_it(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    assert http_get(nginx, path="/cart?x=1").status == 200
    await served.install_certificate(HOST, authority.issue(HOST).install(redirect_https=False))
    assert http_get(nginx, path="/cart?x=1").status == 200
    await served.install_certificate(HOST, authority.issue(HOST).install())
    moved = http_get(nginx, path="/cart?x=1")
    assert (moved.status, moved.headers["location"]) == (308, f"https://{HOST}/cart?x=1")
    assert https_get(nginx, authority).status == 200
    await served.remove_certificate(HOST)
    assert http_get(nginx).status == 200
    assert handshake_fails(nginx, authority)


async def test_hsts_only_over_https_and_only_when_asked(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    await served.install_certificate(HOST, authority.issue(HOST).install(redirect_https=False))
    assert "strict-transport-security" not in https_get(nginx, authority).headers
    await served.install_certificate(HOST, authority.issue(HOST).install(
        redirect_https=False, hsts=True))
    assert https_get(nginx, authority).headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in http_get(nginx).headers


async def test_acme_challenges_are_answered_over_http_for_any_name_even_with_a_redirect(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    path = f"/.well-known/acme-challenge/{TOKEN}"
    await served.install_certificate(HOST, authority.issue(HOST).install())
    assert http_get(nginx, HOST, path).status == 404
    await served.put_acme_challenge(TOKEN, KEY_AUTHORIZATION)
    for name in (HOST, "not-yet-routed.test"):
        answer = http_get(nginx, name, path)
        assert (answer.status, answer.body) == (200, KEY_AUTHORIZATION)
        assert answer.headers["content-type"] == "text/plain"
    await served.remove_acme_challenge(TOKEN)
    assert http_get(nginx, HOST, path).status == 404


async def test_certificates_are_listed_and_come_back_after_a_reboot(
    nginx: Nginx, tmp_path: Path, sites: dict[str, Site], authority: Authority
) -> None:
    issued = authority.issue(HOST, "www.shop.test")
    node = node_of(nginx, tmp_path)
    await node.apply_site(sites["a"])
    await node.install_certificate(HOST, issued.install(hsts=True))
    [listed] = await node.installed_certificates()
    assert (listed.hostname, listed.sha256, listed.redirect_https, listed.hsts) == (
        HOST, issued.sha256, True, True)
    assert listed.not_after == issued.certificate.not_valid_after_utc
    shutil.rmtree(nginx.layout.tls)  # /run is emptied by a reboot
    again = node_of(nginx, tmp_path)
    await again.restore()
    assert https_get(nginx, authority).leaf_sha256 == issued.sha256
    assert await again.installed_certificates() == [listed]


async def test_the_key_is_readable_by_nginx_workers_only(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    await served.install_certificate(HOST, authority.issue(HOST).install())
    published = nginx.layout.tls / HOST / "certificate.pem"
    kept = served.certs_dir / HOST / "certificate.pem"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert stat.S_IMODE(published.stat().st_mode) == 0o640
        assert published.stat().st_gid == certs.worker_group()
    else:
        assert stat.S_IMODE(published.stat().st_mode) == 0o600
    assert not nginx.layout.tls.stat().st_mode & stat.S_IROTH


def openssl_handshake(port: int, server_name: str) -> str:
    """What `openssl s_client` says of a handshake with this SNI (Python refuses to send
    names that are not host names)."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", server_name],
        input=b"", capture_output=True, timeout=30, check=False)
    return result.stdout.decode(errors="replace")


async def test_an_sni_cannot_reach_a_file_outside_the_certificates(
    served: Node, nginx: Nginx, authority: Authority
) -> None:
    """A certificate placed where `tls/../outside/` leads is never loaded."""
    outside = nginx.layout.tls.parent / "outside"
    outside.mkdir(exist_ok=True)
    issued = authority.issue("outside.test")
    (outside / "certificate.pem").write_text(issued.chain_pem + key_pem(issued.key))
    await served.install_certificate(HOST, authority.issue(HOST).install())
    assert "CN = shop.test" in openssl_handshake(nginx.layout.https_port, HOST)
    for name in ("../outside", "Shop.Test/../../outside", "../outside\n"):
        said = openssl_handshake(nginx.layout.https_port, name)
        assert "outside.test" not in said
        assert "no peer certificate available" in said


# Refused with a reason, before anything is written


def install_with(authority: Authority, **changes: str) -> CertificateInstall:
    issued = authority.issue(HOST)
    return issued.install().model_copy(update=changes)


@pytest.mark.parametrize(("change", "reason"), [
    ({"certificate_pem": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"},
     "the certificate PEM does not parse"),
    ({"certificate_pem": "hello"}, "the certificate PEM does not parse"),
    ({"key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
     "the key PEM does not parse"),
    ({"key_pem": key_pem(new_key())}, "the key does not match the certificate"),
])
def test_what_cannot_be_served_is_refused(
    authority: Authority, change: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        certs.checked(HOST, install_with(authority, **change))


def test_a_certificate_must_cover_the_name(authority: Authority) -> None:
    with pytest.raises(InvalidInput, match=r"does not cover shop\.test: it names other\.test"):
        certs.checked(HOST, authority.issue("other.test").install())
    wildcard = authority.issue("*.shop.test").install()
    certs.checked("www.shop.test", wildcard)
    for name in (HOST, "a.b.shop.test"):
        with pytest.raises(InvalidInput, match="does not cover"):
            certs.checked(name, wildcard)


def test_only_parsed_pem_is_written(authority: Authority) -> None:
    issued = authority.issue(HOST)
    noisy = issued.install().model_copy(update={
        "certificate_pem": "Bag Attributes: anything\n" + issued.chain_pem})
    pem = certs.checked(HOST, noisy).pem.decode()
    assert "Bag Attributes" not in pem
    assert pem.count("BEGIN CERTIFICATE") == 2
    assert pem.endswith("-----END PRIVATE KEY-----\n")


async def test_the_agent_answers_422_and_writes_nothing(
    agent: NodeAgentClient, agent_settings: AgentSettings, authority: Authority
) -> None:
    before = written_files(agent_settings.state_dir)
    refused = [
        agent.install_certificate(HOST, authority.issue("other.test").install()),
        agent.install_certificate(HOST, install_with(authority, key_pem=key_pem(new_key()))),
        agent.install_certificate(HOST, install_with(authority, certificate_pem="hello")),
        agent.put_acme_challenge(TOKEN, f"other-token.{KEY_AUTHORIZATION.split('.')[1]}"),
    ]
    for call in refused:
        with pytest.raises(AgentError) as error:
            await call
        assert error.value.status_code == 422
    assert written_files(agent_settings.state_dir) == before


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/certificates/*.shop.test", {"certificate_pem": "x", "key_pem": "x"}),
    ("PUT", "/certificates/a..b", {"certificate_pem": "x", "key_pem": "x"}),
    ("PUT", "/certificates/.shop.test", {"certificate_pem": "x", "key_pem": "x"}),
    ("DELETE", "/certificates/shop.test%2F..%2F..", None),
    ("PUT", "/acme-challenges/a.b", {"key_authorization": "a.b.c"}),
    ("PUT", "/acme-challenges/abc", {"key_authorization": "abc.x\n"}),
    ("PUT", "/certificates/shop.test", {"certificate_pem": "\x00", "key_pem": "x"}),
])
async def test_hostile_names_and_tokens_are_refused(
    agent_transport: httpx.ASGITransport, agent_settings: AgentSettings, method: str,
    path: str, body: dict[str, str] | None
) -> None:
    before = written_files(agent_settings.state_dir)
    content = b"" if body is None else json.dumps(body).encode()
    async with httpx.AsyncClient(transport=agent_transport, base_url="http://a.test") as raw:
        answer = await raw.request(method, path, content=content, headers={
            **signed_headers("workspace-agent-secret", method, path, content),
            "content-type": "application/json"})
    assert answer.status_code in (404, 422), answer.text
    assert written_files(agent_settings.state_dir) == before
