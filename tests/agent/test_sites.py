"""Sites: hostile input never reaches a file; nginx checks every change and a refused one
is rolled back (real nginx on a loopback port, no Docker needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import Site, TlsFiles, Upstream
from dockyard.agent.proxy import Nginx, NginxRejected
from dockyard.agent.settings import AgentSettings
from tests.agent.conftest import signed_headers

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


@pytest.mark.parametrize("path", ["/etc/ssl/private/site.key", "{state}/certs/../agent.key"])
async def test_certificates_outside_the_agent_directory_are_refused(
    agent: NodeAgentClient, agent_settings: AgentSettings, path: str
) -> None:
    before = written_files(agent_settings.state_dir)
    location = path.format(state=agent_settings.state_dir)
    site = Site.model_validate({**GOOD, "tls": {"certificate": location, "key": location}})
    with pytest.raises(AgentError) as refused:
        await agent.apply_site(site)
    assert refused.value.status_code == 422
    assert "certificate files must be inside" in refused.value.detail
    assert written_files(agent_settings.state_dir) == before


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
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def site_files(nginx: Nginx, service: str) -> list[str | None]:
    return [nginx.edge.site_text(service), nginx.switch.site_text(service)]


def test_apply_writes_checks_and_serves_the_site(nginx: Nginx, backend: int) -> None:
    nginx.apply(Site(service="web", server_names=["shop.test"],
                     upstreams=[Upstream(host="127.0.0.1", port=backend)]))
    url = f"http://127.0.0.1:{nginx.layout.http_port}/"
    assert httpx.get(url, headers={"Host": "shop.test"}).text == "hello from shop.test"
    assert httpx.get(url, headers={"Host": "other.test"}).status_code == 404
    assert None not in site_files(nginx, "web")
    assert nginx.switch.layout.socket("web").is_socket()


def test_a_site_nginx_refuses_is_rolled_back_and_the_old_one_keeps_serving(
    nginx: Nginx, backend: int, tmp_path: Path
) -> None:
    site = Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=backend)])
    nginx.apply(site)
    before = site_files(nginx, "web")
    missing = str(tmp_path / "certs" / "missing.pem")
    broken = site.model_copy(update={"tls": TlsFiles(certificate=missing, key=missing),
                                     "upstreams": [Upstream(host="127.0.0.1", port=1)]})
    with pytest.raises(NginxRejected, match=r"missing\.pem"):
        nginx.apply(broken)
    assert site_files(nginx, "web") == before
    url = f"http://127.0.0.1:{nginx.layout.http_port}/"
    assert httpx.get(url, headers={"Host": "shop.test"}).status_code == 200


def test_a_refused_new_site_leaves_no_file(nginx: Nginx, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    site = Site(service="api", server_names=["api.test"],
                upstreams=[Upstream(host="127.0.0.1", port=1)],
                tls=TlsFiles(certificate=missing, key=missing))
    with pytest.raises(NginxRejected):
        nginx.apply(site)
    assert site_files(nginx, "api") == [None, None]
    assert not nginx.switch.layout.socket("api").exists()


def test_the_default_configuration_passes_nginx_check(nginx: Nginx) -> None:
    nginx.check()
    assert "server_names_hash_bucket_size 128;" in nginx.layout.conf.read_text()
    assert "listen" not in nginx.switch.layout.conf.read_text()
