"""Sites: hostile input never reaches a file; nginx checks every change and a refused one
is rolled back (real nginx on a loopback port, no Docker needed)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import Site, Upstream
from dockyard.agent.proxy import Nginx, NginxRejected
from dockyard.agent.settings import AgentSettings
from dockyard.kernel.errors import ServerFailed
from tests.agent.conftest import http_backend, signed_headers

GOOD: dict[str, Any] = {"service": "web", "server_names": ["shop.test"],
                        "upstreams": [{"host": "127.0.0.1", "port": 8000}]}
HOSTILE = [
    {**GOOD, "server_names": ["shop.test; include /etc/shadow"]},
    {**GOOD, "server_names": ["shop.test{"]},
    {**GOOD, "server_names": ["}shop.test"]},
    {**GOOD, "server_names": ["shop test"]},
    {**GOOD, "server_names": ["shop.test\nlocation / { return 200; }"]},
    {**GOOD, "upstreams": [{"host": "127.0.0.1;", "port": 8000}]},
    {**GOOD, "service": "web;"},
    {**GOOD, "server_names": ["*.shop.test"]},
]


def written_files(root: Path) -> dict[str, str]:
    """Every file but the gate's journal of used nonces, which each signed request adds to."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "nonces.log"}


@pytest.mark.parametrize("site", HOSTILE)
async def test_hostile_sites_are_refused_before_anything_is_written(
    agent_settings: AgentSettings, agent_transport: httpx.ASGITransport, site: dict[str, Any]
) -> None:
    before = written_files(agent_settings.state_dir)
    body = json.dumps(site).encode()
    async with httpx.AsyncClient(transport=agent_transport, base_url="http://a.test") as raw:
        answer = await raw.put("/sites", content=body, headers={
            **signed_headers("workspace-agent-secret", "PUT", "/sites", body),
            "content-type": "application/json"})
    assert answer.status_code == 422
    assert written_files(agent_settings.state_dir) == before


async def test_a_wildcard_name_is_refused_saying_why(agent: NodeAgentClient) -> None:
    site = {**GOOD, "server_names": ["shop.test", "*.shop.test"]}
    with pytest.raises(AgentError) as refused:
        await agent._call("PUT", "/sites", body=site)
    assert refused.value.status_code == 422
    assert "wildcard names such as '*.example.com' are not served" in refused.value.detail


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[int]:
    with http_backend(Hello) as port:
        yield port


def site_files(nginx: Nginx, service: str) -> list[str | None]:
    """The switch's site file, and where the edge's route for shop.test leads."""
    link = nginx.layout.hosts / "shop.test" / "switch.sock"
    return [nginx.switch.site_text(service), os.readlink(link) if link.is_symlink() else None]


def test_apply_writes_checks_and_serves_the_site(nginx: Nginx, backend: int) -> None:
    site = Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=backend)])
    nginx.apply(site, [site])
    url = f"http://127.0.0.1:{nginx.layout.http_port}/"
    assert httpx.get(url, headers={"Host": "shop.test"}).text == "hello from shop.test"
    assert httpx.get(url, headers={"Host": "other.test"}).status_code == 404
    assert httpx.get(url, headers={"Host": "_"}).status_code == 404
    assert site_files(nginx, "web")[1] == "../../web.sock"
    assert nginx.edge.site_text("web") is None
    assert nginx.switch.layout.socket("web").is_socket()


UNRESOLVABLE = Upstream(host="no-such-host.invalid", port=80)  # nginx -t: host not found


def test_a_site_nginx_refuses_is_rolled_back_and_the_old_one_keeps_serving(
    nginx: Nginx, backend: int, tmp_path: Path
) -> None:
    site = Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=backend)])
    nginx.apply(site, [site])
    before = site_files(nginx, "web")
    broken = site.model_copy(update={"upstreams": [UNRESOLVABLE]})
    with pytest.raises(NginxRejected, match=r"no-such-host\.invalid"):
        nginx.apply(broken, [broken])
    assert site_files(nginx, "web") == before
    url = f"http://127.0.0.1:{nginx.layout.http_port}/"
    assert httpx.get(url, headers={"Host": "shop.test"}).status_code == 200


def test_a_refused_new_site_leaves_no_file(nginx: Nginx) -> None:
    site = Site(service="api", server_names=["shop.test"], upstreams=[UNRESOLVABLE])
    with pytest.raises(NginxRejected):
        nginx.apply(site, [site])
    assert site_files(nginx, "api") == [None, None]
    assert not nginx.switch.layout.socket("api").exists()


def test_the_default_configuration_passes_nginx_check(nginx: Nginx) -> None:
    nginx.check()
    assert "server_names_hash_bucket_size 128;" in nginx.layout.conf.read_text()
    assert "listen" not in nginx.switch.layout.conf.read_text()


def test_an_edge_that_cannot_start_says_why_with_nginx_s_exit_code_and_output(
        nginx: Nginx, backend: int) -> None:
    site = Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=backend)])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", nginx.layout.http_port))
        squatter.listen()
        with pytest.raises(ServerFailed) as failed:
            nginx.apply(site, [site])
    assert failed.value.status_code == 502
    assert "nginx could not start: exited 1" in failed.value.message
    assert "Address already in use" in failed.value.message
