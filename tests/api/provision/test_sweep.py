"""Servers a control plane left `provisioning` when it stopped in the middle: the state a killed
API leaves (a droplet in the fake DigitalOcean, the row `provisioning` and old, no task running)
is settled by the worker's sweep: `active` when its agent (a real process) answers, else its
droplet destroyed and the server `failed`; never forgotten, never raced with a live run."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from dockyard.agent import tls
from dockyard.core.droplets import PROVIDER, workspace_tag
from dockyard.core.platform import Platform
from dockyard.core.provision_sweep import settle_all
from dockyard.kernel.settings import Settings
from dockyard.models.base import utcnow
from dockyard.models.enums import ServerStatus
from dockyard.models.tables import Server
from dockyard.providers.digitalocean import DigitalOcean, Retries
from tests.api.provision.support import BOTH_DATABASES, INFRA, provision, servers
from tests.fakes.digitalocean import TOKEN, CannedError, FakeDigitalOcean

pytestmark = BOTH_DATABASES
LONG_AGO = timedelta(hours=1)
NO_AGENT = "#cloud-config\nruncmd: []\n"  # the droplet boots; no agent ever answers on it


def made_droplet(fake: FakeDigitalOcean, settings: Settings, workspace_id: str, name: str
                 ) -> int:
    """A droplet as provisioning creates it, active with an address, no agent on it."""
    do = DigitalOcean(TOKEN, fake.base_url, retries=Retries(backoff=0.01), poll_interval=0.05)
    [droplet] = do.create_droplets([name], "fra1", "s-1vcpu-1gb", settings.digitalocean_image,
                                   NO_AGENT, [workspace_tag(workspace_id)])
    do.wait_active([droplet.id], 30)
    return droplet.id


async def left_provisioning(platform: Platform, workspace_id: str, name: str,
                            provider_id: str = "", age: timedelta = LONG_AGO) -> str:
    """The row a killed API leaves behind, last touched `age` ago."""
    then = utcnow() - age
    row = Server(workspace_id=workspace_id, name=name, provider=PROVIDER,
                 provider_id=provider_id, region="fra1", size="s-1vcpu-1gb", agent_port=8421,
                 agent_fingerprint=tls.new_certificate().fingerprint,
                 status=ServerStatus.PROVISIONING, tags=[], created_at=then, updated_at=then)

    async def tx(s: Any) -> str:
        s.add(row)
        await s.flush()
        return row.id

    return await platform.db.write(tx)


async def rewind(platform: Platform, server_id: str, **values: object) -> None:
    """Put a provisioned server back as a run killed before it recorded the answer."""
    async def tx(s: Any) -> None:
        row = await s.get_one(Server, server_id)
        wanted = {"status": ServerStatus.PROVISIONING, "updated_at": utcnow() - LONG_AGO,
                  **values}
        for key, value in wanted.items():
            setattr(row, key, value)

    await platform.db.write(tx)


async def events_of(client, admin, server_id: str) -> list[tuple[str, str]]:
    answer = await client.get(f"{INFRA}/servers/{server_id}/events", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    return [(event["kind"], event["message"]) for event in answer.json()]


def deletes(fake: FakeDigitalOcean) -> list[str]:
    return [r for r in fake.requests if r.startswith("DELETE /v2/droplets/")]


async def test_an_interrupted_provisioning_destroys_its_droplet_and_fails_the_server(
        client, admin, fake, settings, platform):
    droplet_id = made_droplet(fake, settings, admin.workspace_id, "web-1a2b3c")
    server_id = await left_provisioning(platform, admin.workspace_id, "web-1a2b3c",
                                        str(droplet_id))
    said = await settle_all(platform)
    reason = ("provisioning was interrupted (the control plane restarted?) and its agent "
              "never answered; its droplet was destroyed")
    assert said == [f"server web-1a2b3c: {reason}"]
    assert fake.state.droplets == {}
    server = (await servers(client, admin))["web-1a2b3c"]
    assert (server["status"], server["status_reason"]) == ("failed", reason)
    assert await events_of(client, admin, server_id) == [("provision_failed", reason)]
    assert await settle_all(platform) == []


async def test_a_server_whose_agent_answers_joins_as_active(client, admin, fake, platform):
    found = await provision(client, admin)
    server = (await servers(client, admin))[found[0]["server"]]
    await rewind(platform, server["id"], ip="", agent_version=None)  # killed while waiting
    [said] = await settle_all(platform)
    assert "but its agent" in said
    after = (await servers(client, admin))[server["name"]]
    assert (after["status"], after["ip"]) == ("active", server["ip"])
    assert after["agent_version"] == server["agent_version"]
    [(kind, message)] = await events_of(client, admin, server["id"])
    assert kind == "provisioned"
    assert "joined the inventory as active" in message
    assert server["provider_id"] in fake.state.droplets
    assert deletes(fake) == []


async def test_a_droplet_never_recorded_is_found_by_its_name_and_destroyed(
        client, admin, fake, settings, platform):
    made_droplet(fake, settings, admin.workspace_id, "web-4d5e6f")
    made_droplet(fake, settings, "another-workspace", "web-000000")
    await left_provisioning(platform, admin.workspace_id, "web-4d5e6f")
    await left_provisioning(platform, admin.workspace_id, "web-000000")
    said = sorted(await settle_all(platform))
    assert said[0].startswith("server web-000000: provisioning was interrupted")
    assert said[0].endswith("before its droplet was created")
    assert said[1].endswith("its droplet was destroyed")
    assert [d["name"] for d in fake.state.droplets.values()] == ["web-000000"]
    inventory = await servers(client, admin)
    assert {inventory[name]["status"] for name in ("web-4d5e6f", "web-000000")} == {"failed"}


async def test_a_provisioning_younger_than_the_limit_is_left_alone(
        client, admin, fake, settings, platform):
    droplet_id = made_droplet(fake, settings, admin.workspace_id, "web-7a8b9c")
    limit = settings.provision_ready_seconds + settings.provision_active_seconds
    server_id = await left_provisioning(platform, admin.workspace_id, "web-7a8b9c",
                                        str(droplet_id), age=timedelta(seconds=limit - 5))
    asked = len(fake.requests)
    assert await settle_all(platform) == []
    assert len(fake.requests) == asked
    assert str(droplet_id) in fake.state.droplets
    assert (await servers(client, admin))["web-7a8b9c"]["status"] == "provisioning"
    assert await events_of(client, admin, server_id) == []


async def test_when_digitalocean_fails_the_server_stays_provisioning_until_the_next_try(
        client, admin, fake, settings, platform):
    droplet_id = made_droplet(fake, settings, admin.workspace_id, "web-aabbcc")
    server_id = await left_provisioning(platform, admin.workspace_id, "web-aabbcc",
                                        str(droplet_id))
    fake.fail_next(*[CannedError(500, method="GET", path="/v2/droplets")] * 6)
    [said] = await settle_all(platform)
    assert "stays provisioning until the next try" in said
    assert "HTTP 500" in said
    assert str(droplet_id) in fake.state.droplets
    assert (await servers(client, admin))["web-aabbcc"]["status"] == "provisioning"
    assert await events_of(client, admin, server_id) == []
    [said] = await settle_all(platform)  # the next tick: DigitalOcean answers again
    assert said.endswith("its droplet was destroyed")
    assert fake.state.droplets == {}


async def test_without_a_credential_the_server_stays_provisioning(
        client, owner, fake, settings, platform):
    droplet_id = made_droplet(fake, settings, owner.workspace_id, "web-ddeeff")
    await left_provisioning(platform, owner.workspace_id, "web-ddeeff", str(droplet_id))
    [said] = await settle_all(platform)
    assert "no DigitalOcean credential" in said
    assert (await servers(client, owner))["web-ddeeff"]["status"] == "provisioning"
    assert str(droplet_id) in fake.state.droplets


async def test_sweeps_running_at_once_settle_each_server_once(
        client, admin, fake, settings, platform):
    names = [f"web-00000{n}" for n in range(3)]
    for name in names:
        droplet_id = made_droplet(fake, settings, admin.workspace_id, name)
        await left_provisioning(platform, admin.workspace_id, name, str(droplet_id))
    said = await asyncio.gather(*(settle_all(platform) for _ in range(3)))
    assert sorted(sentence.split(":")[0] for each in said for sentence in each) == [
        f"server {name}" for name in names]
    assert len(deletes(fake)) == 3
    assert fake.state.droplets == {}
