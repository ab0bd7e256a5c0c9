"""Domains end to end on the 3-node namespace cluster: the example app on all three servers,
a domain with its certificate from a real ACME server (pebble, whose HTTP-01 checks reach
the servers' edges) and its DNS at a fake Cloudflare that checks every exchange against the
official spec. Every server serves it over HTTPS (a client trusting pebble's root only);
a renewal under a strict HTTPS client drops nothing and reaches every server; a server
whose agent and nginx stop leaves DNS and comes back; drain and removal clean the records,
and a record the user made is never touched."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.providers.cluster import Cluster
from tests.acme_server import Pebble
from tests.e2e.stage import EXAMPLE, TOKEN, ZONE, Stage, first_node
from tests.e2e.tls import https_get, under_https_load
from tests.live import dockyard, ok, ok_json, wait_until

pytestmark = pytest.mark.slow
NAME = "shop.example.test"
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(stage: Stage, pebble: Pebble) -> dict[str, Any]:
    """The example on all three servers, and the domain with its DNS at Cloudflare."""
    stage.ensure_service("shop", "site")
    events = stage.deploy_archive(EXAMPLE, project="shop", service="site",
                                  server=[n["name"] for n in stage.nodes], **FAST)
    assert events[-1]["status"] == "succeeded", events[-8:]
    pebble.add_a(NAME, stage.nodes[0]["ip"])
    ok(dockyard("credentials", "set", "cf", "--provider", "cloudflare", env=stage.env,
                input=f"{TOKEN}\n"))
    started = time.monotonic()
    added: dict[str, Any] = ok_json(dockyard(
        "domains", "add", NAME, "-p", "shop", "-s", "site", "--dns", "cf", "--json",
        env=stage.env, timeout=300))
    print(f"domains add -> certificate live in {time.monotonic() - started:.1f} s")
    return added


def records(cloudflare: str) -> dict[str, str]:
    """Every A record of the zone: name -> content, by what the fake API says."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=cloudflare, headers=headers, timeout=10) as http:
        zone = http.get("/zones", params={"name": ZONE}).json()["result"][0]["id"]
        found = http.get(f"/zones/{zone}/dns_records", params={"per_page": 100}).json()
    return {f"{r['name']}={r['content']}": r.get("comment") or "" for r in found["result"]}


def addresses(cloudflare: str, name: str = NAME) -> set[str]:
    return {key.split("=", 1)[1] for key in records(cloudflare) if key.startswith(f"{name}=")}


def served(node: dict[str, Any], roots: str) -> tuple[str, str]:
    return https_get(node["ip"], NAME, roots)


def test_every_server_serves_the_domain_over_https_with_its_dns_records(
        stage: Stage, site: dict[str, Any], pebble: Pebble, cloudflare: str) -> None:
    assert (site["certificate_status"], site["dns_status"]) == ("live", "synced"), site
    roots = pebble.roots_pem()
    seen = {node["name"]: served(node, roots) for node in stage.nodes}
    assert {status for _, status in seen.values()} == {"HTTP/1.1 200 OK"}
    assert len({sha for sha, _ in seen.values()}) == 1
    plain = httpx.get(f"http://{stage.nodes[1]['ip']}/x?y=1", headers={"Host": NAME})
    assert (plain.status_code, plain.headers["location"]) == (308, f"https://{NAME}/x?y=1")
    assert addresses(cloudflare) == {n["ip"] for n in stage.nodes}
    listed = ok(dockyard("domains", "list", env=stage.env))
    assert NAME in listed
    assert "live" in listed
    assert max(len(line) for line in listed.splitlines()) <= 80, listed
    shown = ok(dockyard("domains", "show", NAME, env=stage.env))
    assert "dns_addresses" in shown


def test_a_renewal_under_a_strict_https_client_drops_nothing_and_reaches_every_server(
        stage: Stage, site: dict[str, Any], pebble: Pebble) -> None:
    roots = pebble.roots_pem()
    before = {served(node, roots)[0] for node in stage.nodes}
    tally = under_https_load(stage.nodes[0]["ip"], NAME, roots, lambda: ok(dockyard(
        "domains", "renew", NAME, env=stage.env, timeout=300)))
    print(f"certificate renewal under a strict HTTPS client (keep-alive, concurrency 16): "
          f"{tally.ok} ok, {tally.failed} failed {tally.errors}")
    assert tally.failed == 0, tally.errors
    assert tally.ok > 50
    after = {served(node, roots)[0] for node in stage.nodes}
    assert len(after) == 1
    assert after != before


def test_a_server_that_stops_answering_leaves_dns_and_comes_back(
        stage: Stage, site: dict[str, Any], cloudflare: str) -> None:
    cluster, _ = first_node(stage)
    [node3] = [n for n in cluster.state.nodes if n.ip == stage.nodes[2]["ip"]]
    stopped = time.monotonic()
    stop_node(cluster, node3)
    try:
        wait_until(lambda: node3.ip not in addresses(cloudflare), "node3 out of DNS", 60)
        print(f"node3's agent and nginx stopped: out of DNS after "
              f"{time.monotonic() - stopped:.1f} s")
        listed = ok_json(dockyard("servers", "list", "--json", env=stage.env))
        [shown] = [s for s in listed if s["ip"] == node3.ip]
        assert shown["down_copies"], shown
    finally:
        cluster.start_agent(node3)
    back = time.monotonic()
    wait_until(lambda: node3.ip in addresses(cloudflare), "node3 back in DNS", 90)
    print(f"node3's agent started again: back in DNS after {time.monotonic() - back:.1f} s")


def stop_node(cluster: Cluster, node: Any) -> None:
    cluster.stop_agent(node)
    cluster.nginx(node).stop()


def test_drain_and_removing_a_server_take_only_dockyards_records(
        stage: Stage, site: dict[str, Any], cloudflare: str) -> None:
    node1, node2, node3 = stage.nodes
    user_record(cloudflare, "www.example.test", "192.0.2.7")
    ok(dockyard("servers", "drain", node2["name"], env=stage.env))
    assert addresses(cloudflare) == {node1["ip"], node3["ip"]}
    ok(dockyard("servers", "undrain", node2["name"], env=stage.env))
    assert addresses(cloudflare) == {n["ip"] for n in stage.nodes}
    ok(dockyard("servers", "remove", node3["id"], env=stage.env))
    wait_until(lambda: addresses(cloudflare) == {node1["ip"], node2["ip"]},
               "node3's record removed", 30)
    ok(dockyard("domains", "remove", NAME, env=stage.env, timeout=120))
    assert addresses(cloudflare) == set()
    assert addresses(cloudflare, "www.example.test") == {"192.0.2.7"}


def user_record(cloudflare: str, name: str, content: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=cloudflare, headers=headers, timeout=10) as http:
        zone = http.get("/zones", params={"name": ZONE}).json()["result"][0]["id"]
        made = http.post(f"/zones/{zone}/dns_records",
                         json={"type": "A", "name": name, "content": content, "ttl": 1})
    assert made.status_code == 200, made.text
