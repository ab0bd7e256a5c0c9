"""Provisioning servers on the fake DigitalOcean (pydo against a spec-checked fake), each
droplet's agent a real process started from its user-data's key, certificate and environment
(tests/api/provision/support.py): events, inventory, tags, failures that leave no droplet
untracked, refusals, destroying, and a rotated token that locks no agent out."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.agent import tls
from dockyard.models.enums import Role
from dockyard.providers.cloudinit import CLOUD_INIT_VERSION
from dockyard.providers.digitalocean import MANAGED_RULE, MANAGED_TAG
from tests.api.provision.support import INFRA, ONE, PROVISION, provision, servers
from tests.fakes.digitalocean import CannedError


def kinds_of(found: list[dict[str, Any]], server: str) -> list[str]:
    return [event["kind"] for event in found if event["server"] == server]


async def test_provisioned_servers_answer_with_the_workspace_key_and_a_pinned_certificate(
        client, admin, fake, droplets):
    found = await provision(client, admin, count=2, name="web")
    names = {event["server"] for event in found if event["server"]}
    assert len(names) == 2
    assert all(name.startswith("web-") for name in names)
    for name in names:
        assert kinds_of(found, name) == ["creating", "created", "active", "ready"]
    assert found[-1]["kind"] == "done"
    assert found[-1]["ready"] == 2
    inventory = await servers(client, admin)
    for name in names:
        server = inventory[name]
        assert (server["status"], server["provider"], server["region"], server["size"]) == (
            "active", "digitalocean", "fra1", "s-1vcpu-1gb")
        assert server["cloud_init_version"] == CLOUD_INIT_VERSION
        droplet = fake.state.droplets[server["provider_id"]]
        assert MANAGED_TAG in droplet["tags"]
        assert f"dockyard-ws-{admin.workspace_id[:8]}" in droplet["tags"]
        home = droplets.root / server["provider_id"]
        pem = home / "var/lib/dockyard-agent/tls/agent.crt"
        assert server["agent_fingerprint"] == tls.fingerprint_of_file(pem)
        assert server["ip"] == next(e for e in found if e["kind"] == "active"
                                and e["server"] == name)["ip"]


async def test_the_servers_user_data_installs_the_bundle_and_starts_the_agent(
        client, admin, droplets):
    await provision(client, admin)
    [document] = droplets.booted.values()
    commands = [argv[0] for argv in document["runcmd"]]
    assert commands[:3] == ["apt-get", "apt-get", "python3"]  # a stock image
    assert ["systemctl", "enable", "--now", "docker.service",
            "dockyard-agent.service"] in document["runcmd"]
    paths = {file["path"]: file["permissions"] for file in document["write_files"]}
    assert paths["/var/lib/dockyard-agent/agent.key"] == "0600"
    assert paths["/var/lib/dockyard-agent/tls/agent-key.pem"] == "0600"
    assert "/etc/systemd/system/dockyard-agent.service" in paths


async def test_a_rate_limit_is_waited_out_and_provisioning_goes_on(client, admin, fake):
    fake.fail_next(CannedError(429, reset_in=0, method="POST", path="/v2/droplets"))
    found = await provision(client, admin)
    assert found[-1]["ready"] == 1
    assert sum(r.startswith("POST /v2/droplets") for r in fake.requests) == 2


async def test_a_failing_create_leaves_a_failed_server_and_no_droplet(client, admin, fake):
    fake.fail_next(CannedError(500, method="POST", path="/v2/droplets"))
    found = await provision(client, admin)
    failed = [event for event in found if event["kind"] == "failed"]
    assert len(failed) == 1
    assert "HTTP 500" in failed[0]["message"]
    assert found[-1]["failed"] == 1
    server = (await servers(client, admin))[failed[0]["server"]]
    assert server["status"] == "failed"
    assert "HTTP 500" in server["status_reason"]
    assert fake.state.droplets == {}


async def test_a_droplet_whose_agent_never_answers_is_destroyed_and_its_server_failed(
        client, admin, fake, droplets, settings):
    droplets.agents = False
    settings.provision_ready_seconds = 0.5
    found = await provision(client, admin)
    [failed] = [event for event in found if event["kind"] == "failed"]
    assert "did not answer within 0.5 s" in failed["message"]
    assert "its droplet was destroyed" in failed["message"]
    assert fake.state.droplets == {}
    server = (await servers(client, admin))[failed["server"]]
    assert server["status"] == "failed"
    answer = await client.delete(f"{INFRA}/servers/{server['id']}", headers=admin.headers)
    assert answer.status_code == 204
    assert failed["server"] not in await servers(client, admin)


@pytest.mark.parametrize(("body", "says"), [
    ({"region": "Fra 1"}, "slug"), ({"size": "s-9vcpu-99gb"}, "not a droplet size"),
    ({"region": "sfo9"}, "not offered in region"), ({"count": 11}, "less than or equal"),
    ({"count": 0}, "greater than or equal"), ({"vpc": "not-a-uuid"}, "VPC id"),
    ({"ssh_keys": ["nope"]}, "SSH key"), ({"name": "Web_1"}, "lowercase")])
async def test_bad_requests_are_refused_before_anything_is_made(client, admin, fake, body, says):
    answer = await client.post(PROVISION, json={**ONE, **body}, headers=admin.headers)
    assert answer.status_code == 422, answer.text
    assert says in answer.text
    assert fake.state.droplets == {}


async def test_provisioning_needs_a_credential_and_a_public_url(client, owner, fake, settings):
    answer = await client.post(PROVISION, json=ONE, headers=owner.headers)
    assert answer.status_code == 404
    assert "credentials set" in answer.text
    settings.public_url = "http://127.0.0.1:8000"
    answer = await client.post(PROVISION, json=ONE, headers=owner.headers)
    assert answer.status_code == 409
    assert "DOCKYARD_PUBLIC_URL" in answer.text
    assert fake.state.droplets == {}


async def test_an_unknown_snapshot_is_refused(client, admin, fake):
    answer = await client.post(PROVISION, json={**ONE, "snapshot": "42"},
                               headers=admin.headers)
    assert answer.status_code == 404
    assert "42" in answer.text
    assert fake.state.droplets == {}


async def test_destroying_a_server_destroys_its_droplet_and_forgets_it(client, admin, fake):
    found = await provision(client, admin)
    name = found[0]["server"]
    server = (await servers(client, admin))[name]
    answer = await client.get(f"{INFRA}/droplets", headers=admin.headers)
    assert [(d["id"], d["server"]) for d in answer.json()] == [
        (int(server["provider_id"]), name)]
    answer = await client.delete(f"{INFRA}/servers/{server['id']}/droplet",
                                 headers=admin.headers)
    assert answer.status_code == 204, answer.text
    assert fake.state.droplets == {}
    assert name not in await servers(client, admin)


async def test_an_unmanaged_droplet_is_destroyed_only_when_forced(client, admin, fake):
    mine = fake.add_droplet("personal-blog", ["web"])
    path = f"{INFRA}/droplets/{mine['id']}"
    answer = await client.delete(path, headers=admin.headers)
    assert answer.status_code == 403
    assert MANAGED_RULE in answer.text
    assert str(mine["id"]) in fake.state.droplets
    listed = await client.get(f"{INFRA}/droplets", headers=admin.headers)
    assert listed.json() == []
    answer = await client.delete(path, params={"force": "true"}, headers=admin.headers)
    assert answer.status_code == 204
    assert fake.state.droplets == {}


async def test_a_rotated_token_locks_no_agent_out(client, admin, fake):
    found = await provision(client, admin)
    server = (await servers(client, admin))[found[0]["server"]]
    fake.token = "rotated-digitalocean-token"
    body = {"provider": "digitalocean", "token": fake.token}
    answer = await client.put(f"{INFRA}/credentials/digitalocean", json=body,
                              headers=admin.headers)
    assert answer.status_code == 200
    answer = await client.post(f"{INFRA}/servers/{server['id']}/check", headers=admin.headers)
    assert answer.json()["status"] == "active", answer.text
    answer = await client.get(f"{INFRA}/droplets", headers=admin.headers)
    assert answer.status_code == 200
    assert len(answer.json()) == 1


async def test_sizes_and_regions_come_from_digitalocean(client, admin):
    sizes = (await client.get(f"{INFRA}/sizes", headers=admin.headers)).json()
    assert {"slug": "s-1vcpu-1gb", "price_monthly": 6.0, "memory": 1024}.items() <= \
        sizes[0].items()
    regions = (await client.get(f"{INFRA}/regions", headers=admin.headers)).json()
    assert "fra1" in {region["slug"] for region in regions}


async def test_a_member_cannot_provision(client, admin, member_of, fake):
    member = await member_of(Role.MEMBER)
    answer = await client.post(PROVISION, json=ONE, headers=member.headers)
    assert answer.status_code == 403
    assert fake.state.droplets == {}
