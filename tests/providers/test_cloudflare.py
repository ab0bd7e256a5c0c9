"""The Cloudflare provider through the official SDK against the local fake, whose every
exchange is checked against Cloudflare's published OpenAPI document (none may be refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from dockyard.kernel.errors import InvalidInput
from dockyard.providers.cloudflare import (
    MARKER,
    CloudflareDns,
    CloudflareFailed,
    DnsChange,
    DnsConflict,
)
from tests.api.test_deploys import closed_port
from tests.fakes.cloudflare import TOKEN, FakeCloudflare, serve_checked

NAME = "shop.example.test"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeCloudflare]:
    yield from serve_checked(tmp_path / "cloudflare.json", ("example.test", "eu.example.test"))


@pytest.fixture
async def dns(fake: FakeCloudflare) -> AsyncIterator[CloudflareDns]:
    async with CloudflareDns(TOKEN, fake.base_url, max_retries=0) as client:
        yield client


def shown(fake: FakeCloudflare, name: str = NAME, zone: str = "example.test"
          ) -> set[tuple[str, str, bool, str | None]]:
    return {(r["type"], r["content"], r["proxied"], r.get("comment"))
            for r in fake.records(zone) if r["name"] == name}


async def test_one_record_per_address_a_or_aaaa_marked_as_dockyards(fake, dns):
    change = await dns.sync_records(NAME, ["192.0.2.1", "2001:db8::1", "192.0.2.2"], False)
    assert sorted(change.created) == ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
    assert shown(fake) == {("A", "192.0.2.1", False, MARKER), ("A", "192.0.2.2", False, MARKER),
                           ("AAAA", "2001:db8::1", False, MARKER)}


async def test_changed_addresses_are_created_before_the_old_ones_go(fake, dns):
    await dns.sync_records(NAME, ["192.0.2.1", "192.0.2.2"], False)
    change = await dns.sync_records(NAME, ["192.0.2.2", "192.0.2.3"], False)
    assert change == DnsChange(created=["192.0.2.3"], updated=[], deleted=["192.0.2.1"])
    assert {c for _, c, _, _ in shown(fake)} == {"192.0.2.2", "192.0.2.3"}
    assert await dns.sync_records(NAME, ["192.0.2.3", "192.0.2.2"], False) == DnsChange()


async def test_the_proxied_flag_is_changed_in_place(fake, dns):
    await dns.sync_records(NAME, ["192.0.2.1"], False)
    [before] = fake.records("example.test")
    change = await dns.sync_records(NAME, ["192.0.2.1"], True)
    assert change == DnsChange(updated=["192.0.2.1"])
    [after] = fake.records("example.test")
    assert (after["id"], after["proxied"]) == (before["id"], True)


@pytest.mark.parametrize(("kind", "content"), [
    ("CNAME", "shops.example.net"), ("A", "198.51.100.7"), ("AAAA", "2001:db8::7")])
async def test_a_users_own_record_is_a_conflict_and_left_alone(fake, dns, kind, content):
    mine = fake.add_user_record("example.test", kind, NAME, content)
    with pytest.raises(DnsConflict) as refused:
        await dns.sync_records(NAME, ["192.0.2.1"], False)
    assert f"{kind} {content}" in refused.value.message
    assert "delete them in Cloudflare" in refused.value.message
    assert refused.value.status_code == 409
    assert fake.records("example.test") == [mine]
    assert await dns.remove_records(NAME) == DnsChange()
    assert fake.records("example.test") == [mine]


async def test_removal_deletes_only_dockyards_records(fake, dns):
    users = [fake.add_user_record("example.test", "TXT", NAME, '"v=spf1 -all"'),
             fake.add_user_record("example.test", "A", f"www.{NAME}", "198.51.100.7")]
    await dns.sync_records(NAME, ["192.0.2.1", "2001:db8::1"], True)
    change = await dns.remove_records(NAME)
    assert sorted(change.deleted) == ["192.0.2.1", "2001:db8::1"]
    assert fake.records("example.test") == users
    assert await dns.remove_records(NAME) == DnsChange()


async def test_a_second_run_of_the_fake_sees_the_first_runs_records(tmp_path):
    state = tmp_path / "cloudflare.json"
    for run in serve_checked(state):
        async with CloudflareDns(TOKEN, run.base_url, max_retries=0) as dns:
            await dns.sync_records(NAME, ["192.0.2.1"], False)
    for run in serve_checked(state):
        async with CloudflareDns(TOKEN, run.base_url, max_retries=0) as dns:
            assert await dns.sync_records(NAME, ["192.0.2.1"], False) == DnsChange()
            assert (await dns.remove_records(NAME)).deleted == ["192.0.2.1"]


async def test_the_longest_zone_holding_the_name_is_used(fake, dns):
    assert (await dns.zone_for("shop.eu.example.test")).name == "eu.example.test"
    await dns.sync_records("shop.eu.example.test", ["192.0.2.9"], False)
    assert shown(fake, "shop.eu.example.test", "eu.example.test") == {
        ("A", "192.0.2.9", False, MARKER)}
    assert fake.records("example.test") == []


async def test_a_name_outside_every_zone_says_which_zones_the_token_sees(dns):
    with pytest.raises(InvalidInput) as refused:
        await dns.sync_records("shop.other.test", ["192.0.2.1"], False)
    assert "shop.other.test" in refused.value.message
    assert "eu.example.test, example.test" in refused.value.message


async def test_bad_input_is_refused_before_any_call(dns):
    with pytest.raises(InvalidInput, match="IP address"):
        await dns.sync_records(NAME, ["192.0.2.1\n"], False)
    with pytest.raises(InvalidInput, match="lowercase DNS name"):
        await dns.sync_records("Shop.example.test\n", ["192.0.2.1"], False)


async def test_a_refused_token_says_what_to_store(fake):
    async with CloudflareDns("not-the-token", fake.base_url, max_retries=0) as dns:
        with pytest.raises(CloudflareFailed) as refused:
            await dns.sync_records(NAME, ["192.0.2.1"], False)
    assert "refused the token" in refused.value.message
    assert "Authentication error (code 10000)" in refused.value.message
    assert "DNS:Edit" in refused.value.message


async def test_an_api_that_does_not_answer_is_a_clear_error():
    async with CloudflareDns(TOKEN, f"http://127.0.0.1:{closed_port()}/client/v4",
                             max_retries=0) as dns:
        with pytest.raises(CloudflareFailed, match="did not answer while listing the zones"):
            await dns.sync_records(NAME, ["192.0.2.1"], False)


def csr_for(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, names: list[str]) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()),
                                 rsa.generate_private_key(65537, 2048)], ids=["ecc", "rsa"])
async def test_an_origin_certificate_is_signed_by_the_ca_for_the_names(fake, dns, key):
    names = [NAME, f"*.{NAME}"]
    issued = await dns.origin_certificate(names, csr_for(key, names), 90)
    leaf = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    leaf.verify_directly_issued_by(fake.state.ca.certificate)
    assert leaf.public_key() == key.public_key()
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == names
    soon = datetime.now(UTC) + timedelta(days=90)
    assert abs(issued.not_after - soon) < timedelta(minutes=5)
    assert [c["id"] for c in fake.state.certificates] == [issued.id]


async def test_an_origin_certificate_validity_outside_the_apis_choices_is_refused(dns):
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidInput, match="one of"):
        await dns.origin_certificate([NAME], csr_for(key, [NAME]), 91)
    with pytest.raises(InvalidInput, match="certificate signing request"):
        await dns.origin_certificate([NAME], "not a CSR", 90)


async def test_the_fake_refuses_what_the_spec_refuses_in_its_error_shape(fake):
    zone = fake.zone_id("example.test")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as http:
        answer = await http.post(f"/zones/{zone}/dns_records",
                                 json={"type": "A", "name": NAME, "content": "not-an-ip"})
        paged = await http.get("/zones", params={"per_page": 500})
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    assert "InvalidRequestBody" in answer.json()["errors"][0]["message"]
    assert paged.status_code == 400, "per_page is at most 50 for zones"
    assert fake.records("example.test") == []


async def test_an_answer_of_the_fake_the_spec_refuses_is_recorded(fake, dns):
    record = fake.add_user_record("example.test", "A", NAME, "192.0.2.1")
    record["comment"] = None  # the document says a comment is a string
    fake.state.save()
    with pytest.raises(DnsConflict):
        await dns.sync_records(NAME, ["192.0.2.1"], False)
    assert len(fake.violations) == 1
    assert "GET /client/v4/zones/" in fake.violations[0]
    fake.violations.clear()  # seen; the fixture fails any test that leaves one


async def test_the_fake_takes_the_credentials_the_api_takes_where_it_takes_them(fake):
    key = ec.generate_private_key(ec.SECP256R1())
    body = {"csr": csr_for(key, [NAME]), "hostnames": [NAME], "request_type": "origin-ecc",
            "requested_validity": 7}
    service_key = {"X-Auth-User-Service-Key": TOKEN}
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        by_service_key = await http.post("/certificates", headers=service_key, json=body)
        zones_by_service_key = await http.get("/zones", headers=service_key)
        wrong_type = await http.post("/certificates", headers=service_key,
                                     json={**body, "request_type": "origin-rsa"})
    assert by_service_key.status_code == 200, by_service_key.text
    assert zones_by_service_key.status_code == 403
    assert wrong_type.status_code == 400
    assert "does not fit request_type origin-rsa" in wrong_type.json()["errors"][0]["message"]


def meddling(method: str, act: Callable[[], None]) -> httpx.AsyncClient:
    """An HTTP client for the SDK that lets another writer `act` on the fake just before the
    first `method` request on a DNS record reaches it (two syncs at once, say)."""
    pending = [True]

    async def hook(request: httpx.Request) -> None:
        if request.method == method and "/dns_records" in request.url.path and pending:
            pending.clear()
            act()

    return httpx.AsyncClient(event_hooks={"request": [hook]})


async def test_a_record_another_sync_created_meanwhile_is_taken_as_made(fake):
    def other_sync() -> None:
        fake.add_user_record("example.test", "A", NAME, "192.0.2.1", comment=MARKER)

    async with CloudflareDns(TOKEN, fake.base_url, max_retries=0,
                             http_client=meddling("POST", other_sync)) as dns:
        assert (await dns.sync_records(NAME, ["192.0.2.1"], False)).created == ["192.0.2.1"]
    assert shown(fake) == {("A", "192.0.2.1", False, MARKER)}


async def test_a_record_the_user_created_meanwhile_is_still_a_failure(fake):
    def user() -> None:
        fake.add_user_record("example.test", "A", NAME, "192.0.2.1")

    async with CloudflareDns(TOKEN, fake.base_url, max_retries=0,
                             http_client=meddling("POST", user)) as dns:
        with pytest.raises(CloudflareFailed, match="An identical record already exists"):
            await dns.sync_records(NAME, ["192.0.2.1"], False)


async def test_a_record_deleted_meanwhile_is_taken_as_deleted(fake, dns):
    await dns.sync_records(NAME, ["192.0.2.1"], False)

    def other_removal() -> None:
        fake.state.records[fake.zone_id("example.test")].clear()

    async with CloudflareDns(TOKEN, fake.base_url, max_retries=0,
                             http_client=meddling("DELETE", other_removal)) as racing:
        assert (await racing.remove_records(NAME)).deleted == ["192.0.2.1"]
    assert fake.records("example.test") == []
