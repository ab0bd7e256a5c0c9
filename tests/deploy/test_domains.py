"""Domains on three servers, in process: real agent apps with their real nginx pairs, a real
ACME server (pebble) whose HTTP-01 checks reach the first node's edge, a real database.
A domain is routed by every edge without any nginx reload; its certificate is issued once,
served by every edge, renewed everywhere, and put back by the reconciler on a node that lost
it."""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from dockyard.core import certify, credentials, domains, reconcile, servers
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import Conflict, InvalidInput, NotFound
from dockyard.models.base import utcnow
from dockyard.models.domain_schemas import DomainCreate
from dockyard.models.enums import Role
from dockyard.models.schemas import CredentialSet, ServerPublic
from dockyard.models.tables import Domain
from tests.acme_server import Pebble, start_pebble
from tests.deploy.conftest import NODES, AgentNode
from tests.deploy.test_engine import MakeRunner, live_release
from tests.fakes.cloudflare import TOKEN as CLOUDFLARE_TOKEN
from tests.fakes.cloudflare import FakeCloudflare
from tests.real_agent import SQLITE_ONLY

Nodes = dict[str, AgentNode]
NAME = "shop.example.test"


@pytest.fixture
def pebble(nodes: Nodes) -> Iterator[Pebble]:
    """Pebble checks HTTP-01 at node1's edge (every name resolves to 127.0.0.1)."""
    with start_pebble(nodes["node1"].nginx.layout.http_port) as server:
        yield server


@pytest.fixture
def acme_platform(platform: Platform, pebble: Pebble) -> Iterator[Platform]:
    kept = platform.settings
    platform.settings = kept.model_copy(update={"acme_directory_url": pebble.directory_url,
                                                "acme_ca_bundle": pebble.ca_bundle})
    yield platform
    platform.settings = kept


def edge_pids(nodes: Nodes) -> dict[str, set[int]]:
    """Every nginx master and worker of every node: a reload changes the workers."""
    return {name: {*node.nginx.running_pids(), *node.nginx.edge.workers(),
                   *node.nginx.switch.workers()} for name, node in nodes.items()}


def served_certificate(node: AgentNode, roots: str) -> str:
    """The sha256 of the certificate the node's edge presents for NAME, verified against
    pebble's root only."""
    context = ssl.create_default_context(cadata=roots)
    with socket.create_connection(("127.0.0.1", node.nginx.layout.https_port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=NAME) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


async def http_answer(node: AgentNode, host: str = NAME) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        return await http.get(f"http://127.0.0.1:{node.nginx.layout.http_port}/",
                              headers={"Host": host})


async def add(platform: Platform, runner: DeployRunner, shop: Any, **body: Any) -> Any:
    create = DomainCreate.model_validate({"hostname": NAME, **body})
    return await domains.add_domain(platform, runner.connect, shop.actor(Role.OWNER), "shop",
                                    "web", create)


async def test_a_domain_is_routed_by_every_edge_without_a_reload(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    release = await live_release(platform, runner, shop)
    before = edge_pids(nodes)
    added = await add(platform, runner, shop, tls="none")
    assert added.certificate_status == "none"
    assert {n: (await http_answer(node)).text for n, node in nodes.items()} == dict.fromkeys(
        NODES, release)
    assert edge_pids(nodes) == before
    assert (await http_answer(nodes["node2"], "other.example.test")).status_code == 404
    await domains.remove_domain(platform, runner.connect, shop.actor(Role.OWNER), NAME)
    assert {(await http_answer(node)).status_code for node in nodes.values()} == {404}
    assert edge_pids(nodes) == before


@SQLITE_ONLY
async def test_an_acme_certificate_is_served_by_every_edge_and_renewed_everywhere(
        acme_platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        pebble: Pebble) -> None:
    runner = make_runner()
    release = await live_release(acme_platform, runner, shop)
    added = await add(acme_platform, runner, shop)
    assert (added.certificate_status, added.certificate_error) == ("live", "")
    roots = pebble.roots_pem()
    first = {name: served_certificate(node, roots) for name, node in nodes.items()}
    assert len(set(first.values())) == 1
    before, key = edge_pids(nodes), await stored_key(acme_platform)
    renewed = await domains.renew_domain(acme_platform, runner.connect,
                                         shop.actor(Role.OWNER), NAME)
    assert await stored_key(acme_platform) == key  # a renewal keeps its key
    assert renewed.certificate_renewed_at > added.certificate_renewed_at
    second = {name: served_certificate(node, roots) for name, node in nodes.items()}
    assert len(set(second.values())) == 1
    assert set(second.values()) != set(first.values())
    assert edge_pids(nodes) == before
    redirect = await http_answer(nodes["node3"])
    assert (redirect.status_code, redirect.headers["location"]) == (308, f"https://{NAME}/")
    verify = ssl.create_default_context(cadata=roots)
    async with httpx.AsyncClient(verify=verify, trust_env=False, timeout=5) as http:
        answer = await http.get(f"https://127.0.0.1:{nodes['node2'].nginx.layout.https_port}/",
                                headers={"Host": NAME}, extensions={"sni_hostname": NAME})
    assert answer.text == release
    assert "strict-transport-security" not in answer.headers


@SQLITE_ONLY
async def test_a_node_that_lost_its_certificate_gets_it_back_from_the_reconciler(
        acme_platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        pebble: Pebble) -> None:
    runner = make_runner()
    await live_release(acme_platform, runner, shop)
    await add(acme_platform, runner, shop)
    node3 = nodes["node3"]
    server = await server_named(acme_platform, shop, "node3")
    async with await runner.connect(server) as client:
        await client.remove_certificate(NAME)
        assert await client.certificates() == []
    events = await reconcile.reconcile_server(acme_platform, server, runner_clients(runner))
    assert [e.message for e in events if e.kind == "certificate"] == [
        f"installed the certificate of {NAME}"]
    served_certificate(node3, pebble.roots_pem())


@SQLITE_ONLY
async def test_a_failed_challenge_is_recorded_with_the_servers_reason_and_http_still_routes(
        acme_platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        pebble: Pebble) -> None:
    runner = make_runner()
    release = await live_release(acme_platform, runner, shop)
    nodes["node1"].network.away = True  # where pebble checks HTTP-01: no challenge there
    added = await add(acme_platform, runner, shop)
    assert added.certificate_status == "failed"
    assert NAME in added.certificate_error
    assert "404" in added.certificate_error
    assert (await http_answer(nodes["node2"])).text == release


async def test_domains_refused_with_a_reason(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    await add(platform, runner, shop, tls="none")
    with pytest.raises(Conflict, match="already routed"):
        await add(platform, runner, shop, tls="none")
    with pytest.raises(InvalidInput, match="under localhost"):
        await add(platform, runner, shop, hostname="web.shop.localhost", tls="none")
    with pytest.raises(NotFound):
        await add(platform, runner, shop, hostname="b.example.test", tls="none",
                  dns_credential="nope")


async def server_named(platform: Platform, shop: Any, name: str) -> ServerPublic:
    found = await servers.list_servers(platform, shop.actor(Role.OWNER))
    return next(s for s in found if s.name == name)


def runner_clients(runner: DeployRunner) -> Any:
    """The reconciler's client factory, from the runner's connect (an async factory)."""
    class Opened:
        def __init__(self, server: ServerPublic) -> None:
            self.server = server

        async def __aenter__(self) -> Any:
            self.client = await runner.connect(self.server)
            return self.client

        async def __aexit__(self, *exc: object) -> None:
            await self.client.aclose()

    return Opened


@SQLITE_ONLY
async def test_the_renewal_job_renews_a_certificate_near_its_end_on_every_edge(
        acme_platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        pebble: Pebble) -> None:
    runner = make_runner()
    await live_release(acme_platform, runner, shop)
    await add(acme_platform, runner, shop)
    assert await certify.renew_due(acme_platform, runner.connect) == 0
    roots = pebble.roots_pem()
    first = {served_certificate(node, roots) for node in nodes.values()}
    soon = utcnow() + timedelta(days=acme_platform.settings.certificate_renew_days - 1)
    await acme_platform.db.write(lambda s: s.execute(
        update(Domain).where(Domain.hostname == NAME).values(certificate_expires_at=soon)))
    assert await certify.renew_due(acme_platform, runner.connect) == 1
    renewed = {served_certificate(node, roots) for node in nodes.values()}
    assert len(renewed) == 1
    assert renewed != first


@SQLITE_ONLY
async def test_a_cloudflare_origin_certificate_and_the_dns_records_of_every_server(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        tmp_path: Path) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    owner = shop.actor(Role.OWNER)
    await credentials.set_credential(platform, owner, "cf", CredentialSet(
        provider="cloudflare", token=CLOUDFLARE_TOKEN))
    kept = platform.settings
    with FakeCloudflare(tmp_path / "cloudflare.json") as fake:
        platform.settings = kept.model_copy(update={"cloudflare_api_url": fake.base_url})
        try:
            added = await add(platform, runner, shop, tls="cloudflare", dns_credential="cf")
        finally:
            platform.settings = kept
        origin_root = fake.state.ca.certificate_pem
        records = fake.records("example.test")
    assert (added.certificate_status, added.dns_status) == ("live", "synced"), added
    assert {served_certificate(node, origin_root) for node in nodes.values()}
    assert {(r["type"], r["name"], r["content"]) for r in records} == {
        ("A", NAME, "127.0.0.1")}
    assert fake.violations == []


async def stored_key(platform: Platform) -> str:
    """The domain's certificate key, decrypted."""
    async def tx(s: Any) -> str:
        row = (await s.scalars(select(Domain).where(Domain.hostname == NAME))).one()
        return platform.box.decrypt(row.key_ciphertext)

    return await platform.db.read(tx)
