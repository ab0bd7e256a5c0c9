"""The ACME client against a real ACME server (Debian's pebble, started here), its HTTP-01
challenges answered by a small HTTP server on the port pebble validates."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store

from dockyard.kernel.errors import InvalidInput
from dockyard.providers.acme import (
    AcmeFailed,
    AcmeIssuer,
    AcmeUnreachable,
    certificate_facts,
    new_account_key,
)
from tests.acme_server import ChallengeResponder, Pebble, PebbleFailed, free_port, start_pebble


@dataclass
class Recorder:
    """publish/withdraw that record their calls and pass them on to a responder (if any)."""

    responder: ChallengeResponder | None = None
    published: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)

    async def publish(self, token: str, key_authorization: str) -> None:
        self.published.append(token)
        if self.responder is not None:
            await self.responder.publish(token, key_authorization)

    async def withdraw(self, token: str) -> None:
        self.withdrawn.append(token)
        if self.responder is not None:
            await self.responder.withdraw(token)


@dataclass
class AcmeSite:
    pebble: Pebble
    responder: ChallengeResponder
    issuer: AcmeIssuer
    account_key: str
    account_url: str = ""


def acme_site(nonce_reject_percent: int = 0, authz_reuse_percent: int = 0
              ) -> Iterator[AcmeSite]:
    http_port = free_port()
    with start_pebble(http_port, nonce_reject_percent=nonce_reject_percent,
                      authz_reuse_percent=authz_reuse_percent) as pebble, \
            ChallengeResponder("127.0.0.1", http_port) as responder:
        yield AcmeSite(pebble, responder, AcmeIssuer(pebble.directory_url, pebble.ca_bundle),
                       new_account_key())


@pytest.fixture(scope="module")
def site() -> Iterator[AcmeSite]:
    yield from acme_site()


@pytest.fixture
async def account(site: AcmeSite) -> AcmeSite:
    if not site.account_url:
        site.account_url = await site.issuer.register(site.account_key, "ops@dockyard.test")
    return site


def verify_for(chain_pem: str, root_pem: str, hostname: str) -> None:
    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem.encode())
    store = Store(x509.load_pem_x509_certificates(root_pem.encode()))
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(hostname))
    verifier.verify(leaf, intermediates)


async def test_issues_one_certificate_for_two_names_that_pebbles_root_verifies(
        account: AcmeSite) -> None:
    calls = Recorder(account.responder)
    names = ["shop.example.test", "www.shop.example.test"]
    issued = await account.issuer.issue(account.account_key, account.account_url, names,
                                        calls.publish, calls.withdraw)
    for name in names:
        verify_for(issued.certificate_pem, account.pebble.roots_pem(), name)
    facts = certificate_facts(issued.certificate_pem)
    assert sorted(facts.names) == names
    assert (facts.not_after, facts.sha256) == (issued.not_after, issued.sha256)
    assert len(calls.published) == 2
    assert sorted(calls.withdrawn) == sorted(calls.published)
    assert set(calls.published) <= set(account.responder.asked)  # pebble fetched each answer
    assert account.responder.answers == {}
    key = serialization.load_pem_private_key(issued.key_pem.encode(), password=None)
    leaf = x509.load_pem_x509_certificates(issued.certificate_pem.encode())[0]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert leaf.public_key() == key.public_key()
    assert "key_pem" not in repr(issued)


async def test_an_unanswered_challenge_fails_at_once_with_the_servers_reason(
        account: AcmeSite) -> None:
    """The issuer waits up to 90 s; failing with pebble's reason (not a timeout message)
    shows it stopped as soon as the authorization turned invalid."""
    calls = Recorder(responder=None)  # nothing is published where pebble looks
    with pytest.raises(AcmeFailed) as failed:
        await account.issuer.issue(account.account_key, account.account_url,
                                   ["unanswered.example.test"], calls.publish, calls.withdraw)
    assert failed.value.message.startswith("unanswered.example.test: ")
    assert "acme-challenge" in failed.value.message
    assert "404" in failed.value.message
    assert failed.value.code == "unauthorized"
    assert calls.withdrawn == calls.published
    assert len(calls.published) == 1


async def test_a_name_nobody_serves_fails_with_connection_refused(account: AcmeSite) -> None:
    account.pebble.add_a("refused.example.test", "127.0.0.2")  # nothing listens there
    calls = Recorder(account.responder)
    with pytest.raises(AcmeFailed, match=r"^refused\.example\.test: .*refused"):
        await account.issuer.issue(account.account_key, account.account_url,
                                   ["refused.example.test", "fine.example.test"],
                                   calls.publish, calls.withdraw)
    assert sorted(calls.withdrawn) == sorted(calls.published)
    assert len(calls.published) == 2


async def test_a_validation_that_never_ends_fails_at_the_deadline(site: AcmeSite) -> None:
    """A server that takes the connection and never answers keeps pebble's check pending."""
    account_url = await site.issuer.register(site.account_key, "")
    site.pebble.add_a("silent.example.test", "127.0.0.3")
    with socket.socket() as silent:
        silent.bind(("127.0.0.3", site.responder.port))
        silent.listen()
        issuer = AcmeIssuer(site.pebble.directory_url, site.pebble.ca_bundle, timeout=2)
        calls = Recorder()
        with pytest.raises(AcmeFailed) as failed:
            await issuer.issue(site.account_key, account_url, ["silent.example.test"],
                               calls.publish, calls.withdraw)
    assert failed.value.message == ("silent.example.test: the ACME server did not validate "
                                    "the challenge within 2 s")
    assert calls.withdrawn == calls.published


async def test_a_publish_that_fails_is_the_error_and_every_token_is_withdrawn(
        account: AcmeSite) -> None:
    calls = Recorder(account.responder)

    async def publish_once(token: str, key_authorization: str) -> None:
        await calls.publish(token, key_authorization)
        if len(calls.published) == 2:
            raise OSError("node2 did not answer")

    with pytest.raises(OSError, match="node2 did not answer"):
        await account.issuer.issue(account.account_key, account.account_url,
                                   ["one.example.test", "two.example.test"], publish_once,
                                   calls.withdraw)
    assert len(calls.published) == 2
    assert calls.withdrawn == calls.published
    assert account.responder.answers == {}


async def test_a_withdraw_that_fails_does_not_lose_the_certificate(account: AcmeSite) -> None:
    async def broken_withdraw(token: str) -> None:
        raise OSError("the agent went away")

    issued = await account.issuer.issue(account.account_key, account.account_url,
                                        ["withdraw.example.test"],
                                        account.responder.publish, broken_withdraw)
    assert certificate_facts(issued.certificate_pem).names == ("withdraw.example.test",)


async def test_registering_a_key_again_answers_the_same_account(site: AcmeSite) -> None:
    key = new_account_key()
    first = await site.issuer.register(key, "first@dockyard.test")
    assert await site.issuer.register(key, "") == first
    assert await site.issuer.register(new_account_key(), "") != first


async def test_an_account_the_server_does_not_know_says_so(site: AcmeSite) -> None:
    """A stored account URL from a directory that forgot it: `code` tells the caller to
    register again."""
    unknown = site.pebble.directory_url.removesuffix("/dir") + "/my-account/1234"
    with pytest.raises(AcmeFailed) as failed:
        await site.issuer.issue(site.account_key, unknown, ["lost.example.test"],
                                Recorder().publish, Recorder().withdraw)
    assert failed.value.code == "accountDoesNotExist"
    assert failed.value.message == f"the ACME server refused: Account {unknown} not found."


async def test_a_contact_the_server_refuses_is_its_reason(site: AcmeSite) -> None:
    with pytest.raises(AcmeFailed, match='contact email "not-an-email" is invalid') as failed:
        await site.issuer.register(new_account_key(), "not-an-email")
    assert failed.value.status_code == 422


async def test_the_server_refuses_a_name_it_will_not_certify(account: AcmeSite) -> None:
    with pytest.raises(AcmeFailed) as failed:
        await account.issuer.issue(account.account_key, account.account_url,
                                   ["exa mple.test"], Recorder().publish, Recorder().withdraw)
    assert failed.value.code == "malformed"
    assert failed.value.message == (
        "the ACME server refused: Order included DNS identifier with a value containing an "
        "illegal character: ' '")


async def test_a_wildcard_needs_a_challenge_dockyard_does_not_answer(account: AcmeSite) -> None:
    calls = Recorder(account.responder)
    with pytest.raises(AcmeFailed) as failed:
        await account.issuer.issue(account.account_key, account.account_url,
                                   ["*.wild.example.test"], calls.publish, calls.withdraw)
    assert failed.value.message == (
        "*.wild.example.test: the ACME server offers no HTTP-01 challenge for this name "
        "(Dockyard answers HTTP-01 only)")
    assert calls.published == []


async def test_a_directory_that_is_down_is_a_clear_error() -> None:
    url = f"https://127.0.0.1:{free_port()}/dir"
    with pytest.raises(AcmeUnreachable) as failed:
        await AcmeIssuer(url).register(new_account_key(), "")
    assert failed.value.message == (f"the ACME directory {url} could not be reached: "
                                    "Connection refused")
    assert failed.value.status_code == 502


async def test_a_server_outside_the_ca_bundle_is_refused(site: AcmeSite) -> None:
    with pytest.raises(AcmeUnreachable, match="DOCKYARD_ACME_CA_BUNDLE"):
        await AcmeIssuer(site.pebble.directory_url).register(new_account_key(), "")


async def test_without_a_ca_bundle_the_systems_store_is_trusted(
        site: AcmeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL's SSL_CERT_FILE stands in for a CA added to this machine's store."""
    monkeypatch.setenv("SSL_CERT_FILE", str(site.pebble.ca_bundle))
    key = new_account_key()
    assert await AcmeIssuer(site.pebble.directory_url).register(key, "") == (
        await site.issuer.register(key, ""))


async def test_a_url_that_is_no_acme_directory_says_so(site: AcmeSite) -> None:
    url = site.pebble.directory_url.removesuffix("/dir") + "/nothing-here"
    with pytest.raises(AcmeUnreachable, match=r"did not answer as an ACME server \(HTTP 404"):
        await AcmeIssuer(url, site.pebble.ca_bundle).register(new_account_key(), "")


async def test_refused_nonces_are_retried() -> None:
    """Pebble refuses 40 % of good nonces here; acme alone retries each request once."""
    for nonce_site in acme_site(nonce_reject_percent=40):
        account_url = await nonce_site.issuer.register(nonce_site.account_key, "")
        for round_ in range(3):
            issued = await nonce_site.issuer.issue(
                nonce_site.account_key, account_url, [f"nonce{round_}.example.test"],
                nonce_site.responder.publish, nonce_site.responder.withdraw)
            assert certificate_facts(issued.certificate_pem).names == (
                f"nonce{round_}.example.test",)


async def test_an_authorization_the_server_reuses_needs_no_challenge() -> None:
    for reuse_site in acme_site(authz_reuse_percent=100):
        account_url = await reuse_site.issuer.register(reuse_site.account_key, "")
        calls = Recorder(reuse_site.responder)
        for _ in range(2):
            await reuse_site.issuer.issue(reuse_site.account_key, account_url,
                                          ["again.example.test"], calls.publish, calls.withdraw)
        assert len(calls.published) == 1
        assert calls.withdrawn == calls.published


def test_certificate_facts_refuses_what_is_not_a_certificate() -> None:
    with pytest.raises(InvalidInput, match="not a PEM certificate"):
        certificate_facts("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


async def test_an_account_key_must_be_p256(site: AcmeSite) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    for key in (rsa_key, "not a key"):
        with pytest.raises(InvalidInput, match="ECDSA P-256"):
            await site.issuer.register(key, "")


def test_a_pebble_that_cannot_start_is_reported_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = time.monotonic()
        with pytest.raises(PebbleFailed, match=r"(?s)^pebble exited with code 1: .*in use"):
            start_pebble(free_port(), acme_port=taken.getsockname()[1])
    assert time.monotonic() - started < 25  # its readiness wait is 30 s
