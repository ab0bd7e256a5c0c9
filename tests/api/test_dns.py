"""DNS follows traffic (core/dns.py) on real SQLite and PostgreSQL, with the official SDK
against the honest Cloudflare fake: a domain's records are the servers that run its service,
take its traffic and are not drained or decommissioned."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from dockyard.core import certify, dns, servers
from dockyard.core.credentials import set_credential
from dockyard.core.servers import register_server
from dockyard.kernel.queue import JobContext
from dockyard.models.enums import AuditAction, Role, ServerStatus
from dockyard.models.schemas import CredentialSet
from dockyard.models.tables import AuditEvent, Domain, Placement, Server, Service
from dockyard.providers.cloudflare import MARKER, CloudflareDns, DnsChange
from tests import sqlite_only
from tests.fakes.cloudflare import TOKEN, FakeCloudflare, serve_checked

database_url = sqlite_only.database_url  # nothing here depends on the database kind

NAME = "shop.example.test"
IPS = {"n1": "192.0.2.1", "n2": "192.0.2.2", "n3": "2001:db8::3"}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeCloudflare]:
    yield from serve_checked(tmp_path / "cloudflare.json")


@pytest.fixture
def dns_for(fake: FakeCloudflare) -> dns.DnsFor:
    return lambda token: CloudflareDns(token, fake.base_url, max_retries=0)


def in_dns(fake: FakeCloudflare) -> list[str]:
    records = [r for r in fake.records("example.test") if r.get("comment") == MARKER]
    return sorted(r["content"] for r in records if r["name"] == NAME)


async def place(platform: Any, owner: Any, *servers: str) -> None:
    """shop/web runs on these servers (registered and active on first use)."""
    for name in servers:
        server_id = await _server_id(platform, owner, name)
        await platform.db.write(partial(_placement, owner=owner, server_id=server_id))


async def _server_id(platform: Any, owner: Any, name: str) -> str:
    async def tx(s: Any) -> str | None:
        return await s.scalar(select(Server.id).where(Server.name == name))

    found = await platform.db.read(tx)
    if found:
        return str(found)
    server = await register_server(platform, owner.workspace_id, name=name, provider="manual",
                                   ip=IPS[name])
    await set_server(platform, name, status=ServerStatus.ACTIVE)
    return server.id


async def _placement(s: Any, owner: Any, server_id: str) -> None:
    service = await s.scalar(select(Service.id).where(Service.name == "web"))
    s.add(Placement(workspace_id=owner.workspace_id, service_id=service, server_id=server_id))


async def set_server(platform: Any, name: str, **values: Any) -> None:
    async def tx(s: Any) -> None:
        await s.execute(update(Server).where(Server.name == name).values(**values))

    await platform.db.write(tx)


async def set_traffic(platform: Any, server: str, traffic: str) -> None:
    async def tx(s: Any) -> None:
        server_id = await s.scalar(select(Server.id).where(Server.name == server))
        await s.execute(update(Placement).where(Placement.server_id == server_id)
                        .values(traffic=traffic))

    await platform.db.write(tx)


async def add_domain(platform: Any, owner: Any, credential: str = "cf") -> str:
    """The row the lead's `domains add` makes, with DNS managed through `credential`."""
    async def tx(s: Any) -> str:
        service = await s.scalar(select(Service.id).where(Service.name == "web"))
        row = Domain(workspace_id=owner.workspace_id, service_id=service, hostname=NAME,
                     tls="none", dns_credential=credential)
        s.add(row)
        await s.flush()
        return str(row.id)

    return await platform.db.write(tx)


async def domain(platform: Any, domain_id: str) -> Domain:
    async def tx(s: Any) -> Domain:
        return await s.get_one(Domain, domain_id)

    return await platform.db.read(tx)


@pytest.fixture
async def web(platform, shop) -> Any:
    """shop/web with a Cloudflare credential 'cf' in its workspace."""
    body = CredentialSet(provider="cloudflare", token=TOKEN)
    await set_credential(platform, shop.actor(Role.OWNER), "cf", body)
    return shop


async def test_records_follow_traffic_drain_and_decommission(platform, web, fake, dns_for):
    await place(platform, web, "n1", "n2", "n3")
    domain_id = await add_domain(platform, web)
    outcome = await dns.sync_domain_dns(platform, domain_id, dns_for)
    assert (outcome.status, outcome.change.created) == ("synced", sorted(IPS.values()))
    row = await domain(platform, domain_id)
    assert (row.dns_status, row.dns_addresses, row.dns_error) == (
        "synced", sorted(IPS.values()), "")
    assert in_dns(fake) == sorted(IPS.values())

    await set_traffic(platform, "n2", "down")
    assert await dns.sync_all_dns(platform, dns_for) == 1
    assert in_dns(fake) == ["192.0.2.1", "2001:db8::3"]
    await set_server(platform, "n3", drained_at=datetime.now(UTC))
    assert await dns.sync_all_dns(platform, dns_for) == 1
    assert in_dns(fake) == ["192.0.2.1"]
    await set_server(platform, "n1", status=ServerStatus.DECOMMISSIONED)
    await set_server(platform, "n3", drained_at=None)
    await set_traffic(platform, "n2", "up")
    assert await dns.sync_all_dns(platform, dns_for) == 1
    assert in_dns(fake) == ["192.0.2.2", "2001:db8::3"]
    assert (await domain(platform, domain_id)).dns_addresses == ["192.0.2.2", "2001:db8::3"]
    assert await dns.sync_all_dns(platform, dns_for) == 0


async def test_a_new_placement_is_added_and_recorded_in_the_audit_trail(
        platform, web, fake, dns_for):
    await place(platform, web, "n1")
    domain_id = await add_domain(platform, web)
    await dns.sync_domain_dns(platform, domain_id, dns_for)
    await place(platform, web, "n2")
    assert await dns.sync_all_dns(platform, dns_for) == 1
    assert in_dns(fake) == ["192.0.2.1", "192.0.2.2"]

    async def tx(s: Any) -> list[Any]:
        return list(await s.scalars(select(AuditEvent.after).where(
            AuditEvent.entity_id == domain_id, AuditEvent.action == AuditAction.UPDATE)))

    updates = await platform.db.read(tx)
    assert [u["dns_addresses"] for u in updates] == [["192.0.2.1"], ["192.0.2.1", "192.0.2.2"]]


async def test_a_refused_sync_is_kept_on_the_domain_and_tried_again(
        platform, web, fake, dns_for):
    await place(platform, web, "n1")
    theirs = fake.add_user_record("example.test", "CNAME", NAME, "elsewhere.example.net")
    domain_id = await add_domain(platform, web)
    outcome = await dns.sync_domain_dns(platform, domain_id, dns_for)
    row = await domain(platform, domain_id)
    assert (outcome.status, row.dns_status, row.dns_addresses) == ("failed", "failed", [])
    assert "CNAME elsewhere.example.net" in row.dns_error
    assert fake.records("example.test") == [theirs]

    fake.state.records[fake.zone_id("example.test")].remove(theirs)  # the user deletes it
    assert await dns.sync_all_dns(platform, dns_for) == 1
    row = await domain(platform, domain_id)
    assert (row.dns_status, row.dns_error, in_dns(fake)) == ("synced", "", ["192.0.2.1"])


async def test_a_missing_or_wrong_credential_fails_with_a_reason(platform, web, fake, dns_for):
    await place(platform, web, "n1")
    domain_id = await add_domain(platform, web, credential="gone")
    assert (await dns.sync_domain_dns(platform, domain_id, dns_for)).error == (
        "credential 'gone' was not found")
    body = CredentialSet(provider="digitalocean", token="do-token")
    await set_credential(platform, web.actor(Role.OWNER), "gone", body)
    outcome = await dns.sync_domain_dns(platform, domain_id, dns_for)
    assert "is a digitalocean token" in outcome.error
    assert fake.records("example.test") == []


async def test_a_domain_without_a_credential_is_left_to_its_owner(platform, web, fake, dns_for):
    await place(platform, web, "n1")
    domain_id = await add_domain(platform, web, credential="")
    assert (await dns.sync_domain_dns(platform, domain_id, dns_for)).status == "none"
    assert await dns.sync_all_dns(platform, dns_for) == 0
    assert fake.records("example.test") == []


async def test_removing_a_domain_deletes_only_its_dockyard_records(
        platform, web, fake, dns_for):
    await place(platform, web, "n1", "n3")
    theirs = fake.add_user_record("example.test", "TXT", NAME, '"verification"')
    domain_id = await add_domain(platform, web)
    await dns.sync_domain_dns(platform, domain_id, dns_for)
    change = await dns.remove_domain_dns(platform, NAME, "cf", web.workspace_id, dns_for)
    assert sorted(change.deleted) == ["192.0.2.1", "2001:db8::3"]
    assert fake.records("example.test") == [theirs]
    assert await dns.remove_domain_dns(platform, NAME, "", web.workspace_id, dns_for) == (
        DnsChange())


async def test_a_failed_sync_is_tried_again_even_once_the_addresses_are_back(
        platform, web, fake, dns_for):
    await place(platform, web, "n1")
    domain_id = await add_domain(platform, web)
    await dns.sync_domain_dns(platform, domain_id, dns_for)
    owner = web.actor(Role.OWNER)
    await set_credential(platform, owner, "cf", CredentialSet(provider="cloudflare",
                                                              token="revoked"))
    await place(platform, web, "n2")
    assert await dns.sync_all_dns(platform, dns_for) == 1
    row = await domain(platform, domain_id)
    assert (row.dns_status, row.dns_addresses) == ("failed", ["192.0.2.1"])
    assert "refused the token" in row.dns_error
    await set_traffic(platform, "n2", "down")  # what DNS lists is right again, by chance
    await set_credential(platform, owner, "cf", CredentialSet(provider="cloudflare",
                                                              token=TOKEN))
    assert await dns.sync_all_dns(platform, dns_for) == 1
    row = await domain(platform, domain_id)
    assert (row.dns_status, row.dns_error, in_dns(fake)) == ("synced", "", ["192.0.2.1"])


async def test_removing_a_server_takes_its_address_out_of_the_records(
        platform, web, fake, dns_for):
    await place(platform, web, "n1", "n2")
    domain_id = await add_domain(platform, web)
    await dns.sync_domain_dns(platform, domain_id, dns_for)
    assert in_dns(fake) == ["192.0.2.1", "192.0.2.2"]
    n2 = await _server_id(platform, web, "n2")
    await servers.remove_server(platform, web.actor(Role.OWNER), n2,
                                on_change=partial(dns.sync_all_dns, platform, dns_for))
    assert in_dns(fake) == ["192.0.2.1"]


async def test_the_workers_renewal_job_retries_a_failed_dns_sync(platform, web, fake):
    await place(platform, web, "n1")
    domain_id = await add_domain(platform, web)
    await platform.db.write(lambda s: s.execute(
        update(Domain).where(Domain.id == domain_id).values(dns_status="failed")))
    settings = platform.settings.model_copy(update={"cloudflare_api_url": fake.base_url})
    await certify.renew_job(JobContext("worker-1", {"settings": settings, "db": platform.db}),
                            {})
    assert in_dns(fake) == ["192.0.2.1"]
    assert (await domain(platform, domain_id)).dns_status == "synced"
