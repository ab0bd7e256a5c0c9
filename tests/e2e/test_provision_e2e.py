"""Servers from DigitalOcean end to end. The fake DigitalOcean API (every exchange checked
against the official document) boots each droplet as a host on the namespace cluster's
bridge and runs the user-data the control plane gave it: the agent that answers is the one
that script installed. A snapshot is built, two servers are provisioned from it, an app is
deployed to both, their agents are upgraded in place under a strict client (zero failed
requests, containers untouched), an unmanaged droplet is refused destruction without force,
a server is destroyed, and a rotated DigitalOcean token locks no agent out.

The control plane starts on an OLDER build of Dockyard (a copy of this code with one file
more, first on PYTHONPATH), so the servers it provisions carry that agent; restarted on this
code, it expects the newer agent and upgrades them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from dockyard.agent import release
from dockyard.providers.images import Tarball
from tests.acme_server import free_port
from tests.agent.conftest import require_the_real_stack
from tests.e2e.load import under_strict_load
from tests.e2e.stage import EXAMPLE, SHARED, Stage, cluster_env
from tests.e2e.tls import _answers
from tests.fakes.droplet_hosts import DropletRecord, HostsState
from tests.live import bring_up, dockyard, ok, ok_json, start, stop, wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "do-token-one"
ROTATED = "do-token-two"
BRIDGE_IP = "10.235.0.1"
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
HOST = "web.cloud.localhost"


@dataclass
class Cloud:
    env: dict[str, str]  # this code's control plane
    older_env: dict[str, str]  # the same control plane on the older build
    fake_url: str
    older_version: str
    root: Path

    def droplets(self, token: str = TOKEN) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.fake_url}/v2/droplets", params={"per_page": 200},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["droplets"]
        return found

    def servers(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = ok_json(dockyard("servers", "list", "--json", env=self.env))
        return sorted(found, key=lambda s: s["name"])


def older_build(directory: Path) -> tuple[Path, str]:
    """A copy of this code with one file more: another agent version."""
    shutil.copytree(release.package_dir(), directory / "dockyard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "dockyard" / "agent" / "older_build.py").write_text('"""An older build."""\n')
    return directory, release.code_version(directory / "dockyard")


@dataclass
class FakeProcess:
    process: subprocess.Popen[bytes]
    url: str
    state: Path


def fake_digitalocean(root: Path) -> FakeProcess:
    port = free_port()
    state = root / "fake-do.json"
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.digitalocean", "--port", str(port),
         "--state", str(state), "--token", TOKEN,
         "--hosts-bridge", "dyd-br0", "--hosts-subnet", "10.235.0.0/24",
         "--hosts-registry", f"{BRIDGE_IP}:5003", "--hosts-root", str(root / "droplets"),
         "--hosts-first", "100"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_until(lambda: _answers(port) or fake.poll() is not None, "the fake DigitalOcean", 30)
    if fake.poll() is not None:
        out = fake.stdout.read().decode() if fake.stdout else ""
        raise RuntimeError(f"the fake DigitalOcean exited with {fake.returncode}: {out}")
    return FakeProcess(fake, f"http://127.0.0.1:{port}", state)


def end_fake(fake: FakeProcess) -> None:
    """SIGTERM: the fake removes its droplet hosts; none of its answers broke the document."""
    fake.process.terminate()
    fake.process.wait(120)
    violations = json.loads(fake.state.read_text()).get("violations", [])
    assert violations == [], f"answers outside DigitalOcean's API document: {violations}"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, base_tarball: Tarball) -> Iterator[Cloud]:
    require_the_real_stack()
    for shared in SHARED:
        shared.close()  # one cluster at a time
    root = Path("/var/tmp/dockyard-tests") / f"do-{os.getpid()}"
    root.mkdir(parents=True, exist_ok=True)
    older, older_version = older_build(tmp_path_factory.mktemp("older"))
    env, _ = start(tmp_path_factory.mktemp("cloud"))
    env.update({"DOCKYARD_HOST": "0.0.0.0", "DOCKYARD_REGISTRY": f"{BRIDGE_IP}:5003",  # noqa: S104
                "DOCKYARD_PUBLIC_URL": f"http://{BRIDGE_IP}:{env['DOCKYARD_PORT']}",
                "DOCKYARD_PROVISION_POLL_SECONDS": "0.5", "DOCKYARD_AGENT_POLL_SECONDS": "5",
                "DOCKYARD_DIGITALOCEAN_RETRY_SECONDS": "0.2",
                "DOCKYARD_REGISTRY_CONFIG": str(root / "registry" / "config.yml")})  # the cluster's
    both = {**env, **cluster_env(root)}
    fake: FakeProcess | None = None
    try:
        ok(dockyard("cluster", "up", "--nodes", "1", env=both, timeout=300))  # bridge, registry
        fake = fake_digitalocean(root)
        env["DOCKYARD_DIGITALOCEAN_API_URL"] = fake.url
        older_env = {**env, "PYTHONPATH": str(older)}
        bring_up(older_env)
        ok(dockyard("credentials", "set", "digitalocean", "--provider", "digitalocean",
                    env=env, input=f"{TOKEN}\n"))
        yield Cloud(env, older_env, fake.url, older_version, root)
    finally:
        stop(env)
        if fake is not None:
            end_fake(fake)
        dockyard("cluster", "down", env=both, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(cloud: Cloud) -> list[dict[str, Any]]:
    """Two servers provisioned from a snapshot built on the older build."""
    started = time.monotonic()
    ok(dockyard("snapshots", "create", "--region", "nyc3", "--json", env=cloud.older_env,
                timeout=600))
    print(f"snapshot built in {time.monotonic() - started:.1f} s")
    [snapshot] = ok_json(dockyard("snapshots", "list", "--json", env=cloud.older_env))
    assert snapshot["agent_version"] == cloud.older_version
    started = time.monotonic()
    out = ok(dockyard("servers", "provision", "--region", "nyc3", "--size", "s-1vcpu-1gb",
                      "--count", "2", "--snapshot", str(snapshot["provider_id"]),
                      "--name", "web", "--json", env=cloud.older_env, timeout=600))
    print(f"2 servers from the snapshot ready in {time.monotonic() - started:.1f} s")
    kinds = [json.loads(line)["kind"] for line in out.splitlines() if line.startswith("{")]
    assert kinds[-1] == "done", out
    assert "failed" not in kinds, out
    return cloud.servers()


def test_servers_come_from_the_snapshot_with_the_agent_their_script_installed(
        cloud: Cloud, servers: list[dict[str, Any]]) -> None:
    assert [(s["provider"], s["status"]) for s in servers] == [("digitalocean", "active")] * 2
    assert {s["agent_version"] for s in servers} == {cloud.older_version}
    by_id = {str(d["id"]): d for d in cloud.droplets()}
    for server in servers:
        droplet = by_id[server["provider_id"]]
        assert "deployed-via-api" in droplet["tags"]
        assert any(tag.startswith("dockyard-ws-") for tag in droplet["tags"])
        assert droplet["networks"]["v4"][0]["ip_address"] == server["ip"]
    for server in servers:  # containers there cannot read the user-data (it holds the key)
        rules = subprocess.run(
            ["nsenter", f"--net=/var/run/netns/{host_of(server, cloud).namespace}", "iptables",
             "-w", "-S", "DOCKER-USER"], capture_output=True, text=True, check=True).stdout
        assert rules.count("169.254.169.254/32") == 2, rules
    snapshot_builds = [d for d in cloud.droplets() if d["id"] not in
                       {int(s["provider_id"]) for s in servers}]
    assert snapshot_builds == [], "the snapshot's build droplet was left behind"


def host_of(server: dict[str, Any], cloud: Cloud) -> DropletRecord:
    state = HostsState.model_validate_json((cloud.root / "droplets" / "hosts.json").read_text())
    return state.droplets[server["provider_id"]]


def containers_of(server: dict[str, Any], cloud: Cloud) -> set[str]:
    client = docker.DockerClient(base_url=host_of(server, cloud).docker.host)
    try:
        return {str(c.id) for c in client.containers.list()}
    finally:
        client.close()


def test_an_app_on_both_servers_keeps_serving_while_their_agents_upgrade(
        cloud: Cloud, servers: list[dict[str, Any]]) -> None:
    stage = Stage(cloud.env, f"http://{BRIDGE_IP}:{cloud.env['DOCKYARD_PORT']}", servers,
                  cloud.root)
    stage.ensure_service("cloud", "web")
    events = stage.deploy_archive(EXAMPLE, project="cloud", service="web",
                                  server=[s["name"] for s in servers], **FAST)
    assert events[-1]["status"] == "succeeded", events[-8:]
    stop(cloud.older_env)
    bring_up(cloud.env)  # this code: it expects the newer agent
    listed = cloud.servers()
    assert {s["agent_expected_version"] for s in listed} == {release.code_version()}
    assert {s["agent_version"] for s in listed} == {cloud.older_version}
    before = {s["name"]: containers_of(s, cloud) for s in servers}
    started = time.monotonic()
    tally = under_strict_load(stage, HOST, lambda: ok(dockyard(
        "servers", "upgrade", "--all", env=cloud.env, timeout=600)))
    print(f"2 agents upgraded in {time.monotonic() - started:.1f} s; strict client: "
          f"{tally.ok} ok, {tally.failed} failed")
    assert tally.ok > 0, tally
    assert tally.failed == 0, tally
    assert {s["agent_version"] for s in cloud.servers()} == {release.code_version()}
    assert {s["name"]: containers_of(s, cloud) for s in servers} == before
    for server in servers:
        assert stage.app(server, HOST).status_code == 200


def test_only_managed_droplets_are_destroyed_and_a_rotated_token_locks_no_agent_out(
        cloud: Cloud, servers: list[dict[str, Any]]) -> None:
    personal = httpx.post(f"{cloud.fake_url}/v2/droplets", headers={
        "Authorization": f"Bearer {TOKEN}"}, timeout=10, json={
        "name": "personal", "region": "nyc3", "size": "s-1vcpu-1gb",
        "image": "debian-12-x64", "user_data": "#cloud-config\nruncmd: []\n"})
    assert personal.status_code == 202, personal.text
    droplet_id = personal.json()["droplet"]["id"]
    refused = dockyard("servers", "destroy", "--droplet", str(droplet_id), env=cloud.env)
    assert refused.returncode != 0
    assert "deployed-via-api" in refused.stderr, refused.stderr
    assert "force" in refused.stderr, refused.stderr
    assert droplet_id in {d["id"] for d in cloud.droplets()}
    gone, kept = servers
    ok(dockyard("servers", "destroy", gone["name"], env=cloud.env, timeout=300))
    assert [s["name"] for s in cloud.servers()] == [kept["name"]]
    assert int(gone["provider_id"]) not in {d["id"] for d in cloud.droplets()}
    ok(dockyard("servers", "destroy", "--droplet", str(droplet_id), "--force", env=cloud.env))
    ok(dockyard("credentials", "set", "digitalocean", "--provider", "digitalocean",
                env=cloud.env, input=f"{ROTATED}\n"))
    checked = ok_json(dockyard("servers", "check", kept["id"], "--json", env=cloud.env))
    assert checked["status"] == "active", checked
