"""Droplets of the fake DigitalOcean booted as namespace-cluster hosts that run their user-data
(tests/fakes/droplet_hosts.py), on a bridge of their own (a cluster of no nodes): files and
commands land in the droplet's own namespaces, units run under a restart loop, bad user-data
fails the boot with its reason, snapshots carry the files, destroy leaves nothing behind.

Needs root, dockerd and docker-registry; run under `flock /tmp/dockyard-cluster.lock`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from dockyard.providers import local, netns, systemd
from dockyard.providers.cluster import Cluster, ClusterSettings
from tests.fakes.digitalocean import TOKEN, FakeDigitalOcean, serve_checked
from tests.fakes.droplet_hosts import DropletHosts, DropletRecord
from tests.fakes.droplet_init import CloudConfigError

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dockerd") is None
                                or shutil.which("docker-registry") is None,
                                reason="needs root, dockerd and docker-registry")

SUBNET, PREFIX, REGISTRY_PORT = "10.239.0.0/24", "dyh", 5009
WEB = """import http.server, os
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        supervised = " under systemd" if os.environ.get("INVOCATION_ID") else ""
        body = (os.environ["GREETING"] + " from " + os.getcwd() + supervised).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", 8080), Answer).serve_forever()
"""


def user_data(files: dict[str, str] | None = None, runcmd: list[list[str]] | None = None,
              **extra: Any) -> str:
    document = {"write_files": [{"path": p, "content": c, "permissions": "0644"}
                                for p, c in (files or {}).items()],
                "runcmd": runcmd or [], **extra}
    text: str = yaml.safe_dump(document)
    return "#cloud-config\n" + text


@pytest.fixture(scope="module")
def bridge() -> Iterator[Cluster]:
    root = Path("/var/tmp/dockyard-tests") / f"dh-{os.getpid()}"
    cluster = Cluster(ClusterSettings.model_validate(
        {"root": root / "cluster", "subnet": SUBNET, "prefix": PREFIX,
         "registry_port": REGISTRY_PORT}))
    try:
        cluster.up(0)
        yield cluster
    finally:
        assert cluster.down() == []
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def hosts(bridge: Cluster) -> Iterator[DropletHosts]:
    made = DropletHosts(bridge.state.bridge or "", SUBNET, bridge.state.registry_address,
                        bridge.root.parent / "hosts", first=100, prefix=PREFIX)
    try:
        yield made
    finally:
        records = list(made.state.droplets.values())
        made.close()
        for record in records:
            assert_gone(record)
        assert not made.root.exists()


def assert_gone(record: DropletRecord) -> None:
    assert not netns.namespace_exists(record.namespace)
    assert not netns.link_exists(record.veth)
    assert not record.root.exists()
    assert netns.mounts_under(record.root, Path("/proc/self/mountinfo").read_text()) == []
    for running in (record.holder, record.dockerd):
        assert running is None or not netns.alive(running.pid, running.program)


def droplet(droplet_id: int, image: int = 171000001) -> dict[str, Any]:
    return {"id": droplet_id, "name": f"d{droplet_id}", "image": {"id": image}}


def test_files_and_commands_land_in_the_droplets_own_namespaces(hosts: DropletHosts) -> None:
    data = user_data({"/opt/dockyard/hello.txt": "hello\n"}, [
        ["cp", "/opt/dockyard/hello.txt", "/opt/dockyard/copied.txt"],
        ["mkdir", "-p", "/var/lib/dockyard-agent/made"],
        ["ip", "-4", "addr"],
        ["apt-get", "install", "-y", "--no-install-recommends", "curl"],
        ["docker", "-H", "unix:///var/run/docker.sock", "info", "--format",
         "root={{.DockerRootDir}}"]])
    ip = hosts.boot(droplet(1), data)
    record = hosts.record(1)
    assert ip == "10.239.0.100"
    assert (record.root / "opt" / "copied.txt").read_text() == "hello\n"
    assert (record.root / "agent" / "made").is_dir()
    assert not Path("/opt/dockyard/copied.txt").exists()
    assert not Path("/var/lib/dockyard-agent/made").exists()
    log = record.log_file.read_text()
    assert f"inet {ip}/24" in log
    assert f"root={record.root / 'docker' / 'data'}" in log
    assert local.docker_responds(record.docker.host)


def answer(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None


def web_unit() -> str:
    return systemd.render_unit(systemd.Unit(
        name="web.service", description="test web", working_directory=Path("/opt/dockyard"),
        exec_start=("/usr/bin/python3", "/opt/dockyard/web.py"),
        environment_file=Path("/etc/dockyard/web.env"), restart_seconds=0))


def test_a_unit_runs_under_a_restart_loop_and_starts_at_boot(hosts: DropletHosts) -> None:
    greeting = 'say "hi" for $5 \\ 100%'
    data = user_data({"/opt/dockyard/web.py": WEB, "/etc/systemd/system/web.service": web_unit(),
                      "/etc/dockyard/web.env": systemd.render_environment_file(
                          {"GREETING": greeting})},
                     [["systemctl", "daemon-reload"],
                      ["systemctl", "enable", "--now", "docker", "web.service"]])
    ip = hosts.boot(droplet(2), data)
    url, main_file = f"http://{ip}:8080/", hosts.record(2).units_dir / "web.service.main"
    local.wait_until(lambda: answer(url) is not None, timeout=10, what="the web unit")
    assert answer(url) == f"{greeting} from /opt/dockyard under systemd"
    first = int(main_file.read_text())
    os.kill(first, 9)
    local.wait_until(lambda: main_file.exists() and int(main_file.read_text()) != first
                     and answer(url) is not None, timeout=10, what="the restarted unit")
    assert hosts.run(2, ["systemctl", "is-active", "web"]).output.strip() == "active"
    second = int(main_file.read_text())
    assert hosts.run(2, ["systemctl", "restart", "web.service"]).ok
    assert int(main_file.read_text()) != second
    local.wait_until(lambda: answer(url) is not None, timeout=10, what="the restarted unit")
    assert hosts.run(2, ["systemctl", "stop", "web"]).ok
    assert answer(url) is None
    assert hosts.run(2, ["systemctl", "is-active", "web"]).returncode == 3
    hosts.power_off(2)
    hosts.power_on(2)  # the enabled unit starts again at boot
    local.wait_until(lambda: answer(url) is not None, timeout=10, what="the unit after a boot")


def test_bad_user_data_is_refused_before_anything_is_made(hosts: DropletHosts) -> None:
    with pytest.raises(CloudConfigError, match="unknown cloud-config keys: packages"):
        hosts.boot(droplet(3), user_data(packages=["nginx"]))
    with pytest.raises(CloudConfigError, match="may write only under"):
        hosts.boot(droplet(3), user_data({"/etc/passwd": "x"}))
    assert hosts.state.droplets == {}


def api(fake: FakeDigitalOcean, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    answer = httpx.request(method, f"{fake.base_url}{path}", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def create(fake: FakeDigitalOcean, name: str, data: str,
           image: int | str = "ubuntu-24-04-x64") -> int:
    body = {"name": name, "region": "nyc3", "size": "s-1vcpu-1gb", "image": image,
            "user_data": data}
    droplet_id: int = api(fake, "POST", "/v2/droplets", body)["droplet"]["id"]
    return droplet_id


def status(fake: FakeDigitalOcean, droplet_id: int) -> str:
    found: str = api(fake, "GET", f"/v2/droplets/{droplet_id}")["droplet"]["status"]
    return found


def act(fake: FakeDigitalOcean, droplet_id: int, kind: str) -> None:
    action = api(fake, "POST", f"/v2/droplets/{droplet_id}/actions", {"type": kind})["action"]
    local.wait_until(lambda: api(fake, "GET", f"/v2/actions/{action['id']}")["action"][
        "status"] == "completed", timeout=30, what=f"{kind} of droplet {droplet_id}")


def becomes(fake: FakeDigitalOcean, droplet_id: int, wanted: str) -> None:
    local.wait_until(lambda: status(fake, droplet_id) == wanted, timeout=60,
                     what=f"droplet {droplet_id} {wanted} (failures: {fake.boot_failures})")


@pytest.fixture
def fake(hosts: DropletHosts, tmp_path: Path) -> Iterator[FakeDigitalOcean]:
    yield from serve_checked(tmp_path / "do.json", hosts=hosts)


def test_a_failing_command_fails_the_boot_with_its_reason(fake: FakeDigitalOcean) -> None:
    unknown = create(fake, "unknown", user_data(packages=["nginx"]))
    failing = create(fake, "failing", user_data(runcmd=[
        ["apt-get", "install", "-y", "--no-install-recommends", "dockyard-no-such-pkg"]]))
    local.wait_until(lambda: len(fake.boot_failures) == 2, timeout=30, what="two failures")
    assert status(fake, unknown) == status(fake, failing) == "new"
    text = "\n".join(fake.boot_failures)
    assert "unknown cloud-config keys: packages" in text
    assert "exited 100" in text
    assert "dockyard-no-such-pkg" in text


def test_a_snapshot_carries_the_files_and_destroy_leaves_nothing(
        fake: FakeDigitalOcean, hosts: DropletHosts) -> None:
    base = create(fake, "base", user_data({"/opt/dockyard/agent/marker": "built\n"}))
    becomes(fake, base, "active")
    act(fake, base, "power_off")
    assert status(fake, base) == "off"
    assert hosts.record(base).holder is None
    act(fake, base, "snapshot")
    [snapshot] = api(fake, "GET", "/v2/snapshots")["snapshots"]
    child = create(fake, "child", user_data(runcmd=[
        ["cp", "/opt/dockyard/agent/marker", "/etc/dockyard/seen"]]), int(snapshot["id"]))
    becomes(fake, child, "active")
    assert (hosts.record(child).root / "etc-dockyard" / "seen").read_text() == "built\n"
    hosts.snapshot(child, "again")  # a running droplet's, through its snapshot
    again = hosts.root / "snapshots" / "again"
    assert (again / "opt" / "agent" / "marker").read_text() == "built\n"
    assert (again / "etc-dockyard" / "seen").read_text() == "built\n"
    records = [hosts.record(base), hosts.record(child)]
    api(fake, "DELETE", f"/v2/droplets/{base}")
    api(fake, "DELETE", f"/v2/droplets/{child}")
    fake.background.join()
    assert hosts.state.droplets == {}
    for record in records:
        assert_gone(record)
