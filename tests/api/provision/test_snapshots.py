"""Dockyard snapshots on the fake DigitalOcean: a build droplet that reports done through the
one-time route, is snapshotted and always destroyed; servers provisioned from the snapshot;
listing and deleting; a persistent server error and an errored action told clearly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dockyard.agent import release
from dockyard.providers import cloudinit
from tests.api.provision.support import (
    BOTH_DATABASES,
    INFRA,
    done_reporter,
    events,
    provision,
    servers,
)
from tests.fakes.digitalocean import CannedError

SNAPSHOTS = f"{INFRA}/snapshots"


async def build(client, admin, droplets) -> list[dict[str, Any]]:
    droplets.report_done = done_reporter(client, asyncio.get_running_loop())
    answer = await client.post(SNAPSHOTS, json={"region": "fra1"}, headers=admin.headers,
                               timeout=120)
    assert answer.status_code == 200, answer.text
    return events(answer.text)


async def test_a_snapshot_is_built_recorded_and_its_droplet_destroyed(
        client, admin, fake, droplets):
    found = await build(client, admin, droplets)
    assert [e["kind"] for e in found] == ["creating", "created", "active", "built",
                                         "snapshotting", "snapshot", "destroyed", "done"]
    assert fake.state.droplets == {}
    [made] = fake.state.snapshots.values()
    listed = (await client.get(SNAPSHOTS, headers=admin.headers)).json()
    assert [(s["provider_id"], s["agent_version"], s["cloud_init_version"], s["current"])
            for s in listed] == [(made["id"], release.code_version(),
                                  cloudinit.CLOUD_INIT_VERSION, True)]


async def test_a_snapshot_build_bakes_in_no_secret_and_starts_no_agent(
        client, admin, droplets):
    await build(client, admin, droplets)
    [document] = droplets.booted.values()
    assert [file["path"] for file in document["write_files"]] == [
        f"{cloudinit.bundle_file(release.code_version())}.sha256"]
    assert not [argv for argv in document["runcmd"] if argv[0] == "systemctl"]
    last = document["runcmd"][-1]
    assert last[:1] == ["curl"]
    assert last[-1].startswith("https://dockyard.example.com/api/v1/infra/snapshots/builds/")


@BOTH_DATABASES
async def test_a_build_token_is_good_once(client, admin, droplets):
    tokens: list[str] = []
    report = done_reporter(client, asyncio.get_running_loop())
    droplets.report_done = lambda url: (tokens.append(url), report(url))
    await client.post(SNAPSHOTS, json={"region": "fra1"}, headers=admin.headers, timeout=120)
    path = tokens[0].removeprefix("https://dockyard.example.com")
    assert (await client.post(path)).status_code == 404
    assert (await client.post(f"{SNAPSHOTS}/builds/{'x' * 43}/done")).status_code == 404


async def test_servers_from_a_snapshot_skip_packages_and_requirements(
        client, admin, fake, droplets):
    await build(client, admin, droplets)
    [made] = fake.state.snapshots.values()
    found = await provision(client, admin, snapshot=made["id"])
    assert found[-1]["ready"] == 1
    document = droplets.booted[max(droplets.booted)]
    commands = [argv[0] for argv in document["runcmd"]]
    assert "apt-get" not in commands
    assert not [c for c in commands if c.endswith("/pip")]
    server = (await servers(client, admin))[found[0]["server"]]
    droplet = fake.state.droplets[server["provider_id"]]
    assert str(droplet["image"]["id"]) == made["id"]


async def test_an_errored_action_fails_the_build_and_destroys_its_droplet(
        client, admin, fake, droplets):
    fake.error_next_action()
    found = await build(client, admin, droplets)
    [failed] = [e for e in found if e["kind"] == "failed"]
    assert "power_off action" in failed["message"]
    assert "errored" in failed["message"]
    assert [e["kind"] for e in found][-2:] == ["destroyed", "done"]
    assert fake.state.droplets == {}
    assert (await client.get(SNAPSHOTS, headers=admin.headers)).json() == []


async def test_a_persisting_server_error_is_a_clear_failure_and_no_droplet_stays(
        client, admin, fake):
    fake.fail_next(*[CannedError(500, method="GET", path="/v2/droplets/")] * 6)
    found = await provision(client, admin)
    [failed] = [e for e in found if e["kind"] == "failed"]
    assert "HTTP 500" in failed["message"]
    assert "gave up after 6 attempts" in failed["message"]
    assert "its droplet was destroyed" in failed["message"]
    assert fake.state.droplets == {}


async def test_a_snapshot_is_deleted_there_and_here(client, admin, fake, droplets):
    await build(client, admin, droplets)
    [made] = fake.state.snapshots.values()
    answer = await client.delete(f"{SNAPSHOTS}/{made['id']}", headers=admin.headers)
    assert answer.status_code == 204, answer.text
    assert fake.state.snapshots == {}
    assert (await client.get(SNAPSHOTS, headers=admin.headers)).json() == []


@pytest.mark.parametrize("body", [{"region": "nowhere9"}, {"region": "fra1", "size": "x-1"}])
async def test_a_snapshot_build_with_a_bad_offer_is_refused(client, admin, fake, body):
    answer = await client.post(SNAPSHOTS, json=body, headers=admin.headers)
    assert answer.status_code == 422, answer.text
    assert fake.state.droplets == {}
