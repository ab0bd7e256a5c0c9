"""Certificates from an ACME server (Let's Encrypt or any RFC 8555 directory), HTTP-01 only.

`acme` (certbot's protocol library) is synchronous: each exchange runs in a worker thread,
while `publish` and `withdraw`, the caller's async callables that put a challenge's answer
where the edge serves it (every server's agent), run on the event loop between them.
Pure of the database: keys come in and go out as PEM, the caller stores them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from dockyard.kernel.errors import InvalidInput

log = logging.getLogger("dockyard.acme")
Publish = Callable[[str, str], Awaitable[None]]
Withdraw = Callable[[str], Awaitable[None]]
T = TypeVar("T")
NONCE_ATTEMPTS = 8
NETWORK_TIMEOUT = 30


class AcmeFailed(InvalidInput):
    """The ACME server refused or failed the request; the message gives its reason. `code`
    is the ACME problem's short type ("rejectedIdentifier", "accountDoesNotExist", ...)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class AcmeUnreachable(AcmeFailed):
    """The ACME directory did not answer, or not over TLS this machine trusts."""

    status_code = 502


@dataclass(frozen=True)
class CertificateFacts:
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    sha256: str  # hex of the leaf's DER


@dataclass(frozen=True)
class IssuedCertificate:
    certificate_pem: str  # the leaf, then the chain
    key_pem: str = field(repr=False)
    not_after: datetime
    sha256: str


def new_account_key() -> str:
    """A new ACME account key: ECDSA P-256, PKCS#8 PEM."""
    return _new_ec_key_pem()


def certificate_facts(pem: str) -> CertificateFacts:
    """The names, validity and fingerprint of the first (leaf) certificate of a PEM chain."""
    try:
        leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    except ValueError as error:
        raise InvalidInput(f"the certificate is not a PEM certificate chain ({error})") from None
    return CertificateFacts(_dns_names(leaf), leaf.not_valid_before_utc,
                            leaf.not_valid_after_utc, leaf.fingerprint(hashes.SHA256()).hex())


class AcmeIssuer:
    """One ACME directory. TLS to it verifies against `ca_bundle` when given, else the
    system's store. An order not valid within `timeout` seconds fails; one the server finds
    invalid fails at once, with the server's reason."""

    def __init__(self, directory_url: str, ca_bundle: Path | None = None, *,
                 timeout: float = 90, poll_seconds: float = 0.5) -> None:
        self.directory_url = directory_url
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.poll_seconds = poll_seconds

    async def register(self, account_key_pem: str, email: str) -> str:
        """The account URL of this key, agreeing to the terms of service; registering the
        same key again answers the same account."""
        return await self._call(self._register, account_key_pem, email)

    async def issue(self, account_key_pem: str, account_url: str, hostnames: Sequence[str],
                    publish: Publish, withdraw: Withdraw, key_pem: str | None = None
                    ) -> IssuedCertificate:
        """A certificate for every name in `hostnames` (all as SANs), for `key_pem` when
        given (a renewal that keeps its key: no handshake can then pair the new certificate
        with the old key), else for a new P-256 key."""
        names = list(dict.fromkeys(hostnames))
        if not names:
            raise InvalidInput("a certificate needs at least one hostname")
        deadline = time.monotonic() + self.timeout
        acme = await self._call(self._account_client, account_key_pem, account_url)
        key_pem = key_pem or _new_ec_key_pem()
        order = await self._call(acme.new_order, crypto_util.make_csr(key_pem.encode(), names))
        fullchain = await self._prove_and_finalize(acme, order, publish, withdraw, deadline)
        facts = certificate_facts(fullchain)
        return IssuedCertificate(fullchain, key_pem, facts.not_after, facts.sha256)

    async def _prove_and_finalize(self, acme: client.ClientV2, order: messages.OrderResource,
                                  publish: Publish, withdraw: Withdraw, deadline: float) -> str:
        """Answer the order's challenges, await their validation, and fetch the certificate
        chain; every published answer is withdrawn, whatever happens."""
        published: list[str] = []
        try:
            for challenge, response in await _publish_answers(acme, order, publish, published):
                await self._call(acme.answer_challenge, challenge, response)
            await self._await_authorizations(acme, order, deadline)
            return await self._call(self._finalize, acme, order, deadline)
        finally:
            await _withdraw_all(withdraw, published)

    async def _await_authorizations(self, acme: client.ClientV2, order: messages.OrderResource,
                                    deadline: float) -> None:
        pending = list(order.authorizations)
        while pending:
            polled = [(await self._call(acme.poll, authz))[0] for authz in pending]
            for authz in polled:
                if authz.body.status not in (messages.STATUS_PENDING, messages.STATUS_VALID):
                    raise _authorization_failed(authz)  # invalid, expired, deactivated...
            pending = [a for a in polled if a.body.status == messages.STATUS_PENDING]
            if pending and time.monotonic() > deadline:
                raise AcmeFailed(f"{_names(pending)}: the ACME server did not validate the "
                                 f"challenge within {self.timeout:.0f} s")
            if pending:
                await asyncio.sleep(self.poll_seconds)

    def _finalize(self, acme: client.ClientV2, order: messages.OrderResource,
                  deadline: float) -> str:
        wall_deadline = datetime.now() + timedelta(seconds=deadline - time.monotonic())
        try:
            finalized = acme.finalize_order(order, wall_deadline)
        except errors.IssuanceError as failed:
            raise AcmeFailed(f"the ACME server refused to issue: {_problem(failed.error)}",
                             failed.error.code or "") from None
        except errors.TimeoutError:
            raise AcmeFailed(f"the ACME server did not issue the certificate within "
                             f"{self.timeout:.0f} s") from None
        return str(finalized.fullchain_pem)

    def _register(self, account_key_pem: str, email: str) -> str:
        acme = self._client(account_key_pem)
        registration = messages.NewRegistration.from_data(
            email=email or None, terms_of_service_agreed=True)
        try:
            return str(acme.new_account(registration).uri)
        except errors.ConflictError as existing:
            return existing.location

    def _account_client(self, account_key_pem: str, account_url: str) -> client.ClientV2:
        acme = self._client(account_key_pem)
        acme.net.account = messages.RegistrationResource(uri=account_url,
                                                         body=messages.Registration())
        return acme

    def _client(self, account_key_pem: str) -> client.ClientV2:
        net = client.ClientNetwork(_account_jwk(account_key_pem), alg=ES256,
                                   user_agent="dockyard", timeout=NETWORK_TIMEOUT)
        # requests' `verify` also takes a CA bundle's path; acme types it as a bool
        net.verify_ssl = _trusted(self.ca_bundle)  # type: ignore[assignment]
        return client.ClientV2(client.ClientV2.get_directory(self.directory_url, net), net)

    async def _call(self, step: Callable[..., T], *args: object) -> T:
        """Run one synchronous exchange in a worker thread, retrying a refused nonce, and turn
        the library's and the network's errors into AcmeFailed."""
        try:
            return await asyncio.to_thread(_retry_bad_nonce, step, *args)
        except messages.Error as problem:
            raise AcmeFailed(f"the ACME server refused: {_problem(problem)}",
                             problem.code or "") from None
        except requests.exceptions.SSLError as error:
            raise AcmeUnreachable(
                f"the ACME server at {self.directory_url} presented a certificate this machine "
                f"does not trust ({_root_cause(error)}); for a private ACME server, set "
                "DOCKYARD_ACME_CA_BUNDLE to its CA's PEM file") from None
        except requests.exceptions.RequestException as error:
            raise AcmeUnreachable(f"the ACME directory {self.directory_url} could not be "
                                  f"reached: {_root_cause(error)}") from None
        except (errors.ClientError, DeserializationError) as error:
            raise AcmeUnreachable(f"{self.directory_url} did not answer as an ACME server "
                                  f"({_unexpected(error)}); check the directory URL") from None


def _trusted(ca_bundle: Path | None) -> str | bool:
    """What TLS to the directory trusts: the CA bundle given, else the system's store
    (requests alone would trust its own copy of Mozilla's list, certifi)."""
    if ca_bundle is not None:
        return str(ca_bundle)
    system = ssl.get_default_verify_paths()
    return system.cafile or system.capath or True


def _retry_bad_nonce(step: Callable[..., T], *args: object) -> T:
    """A server may refuse a good nonce at any time; the request was not acted on, so it is
    sent again (acme retries once itself)."""
    for _attempt in range(NONCE_ATTEMPTS - 1):
        try:
            return step(*args)
        except messages.Error as problem:
            if problem.code != "badNonce":
                raise
    return step(*args)


async def _publish_answers(acme: client.ClientV2, order: messages.OrderResource,
                           publish: Publish, published: list[str]
                           ) -> list[tuple[messages.ChallengeBody, challenges.ChallengeResponse]]:
    """Publish the HTTP-01 answer of every authorization not yet valid. Each token goes into
    `published` before its publish starts, so one that failed half-way (on some servers) is
    withdrawn too."""
    answers = []
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue  # reused by the server: nothing to prove
        challenge = _http01(authz)
        response, key_authorization = challenge.response_and_validation(acme.net.key)
        token = challenge.chall.encode("token")
        published.append(token)
        await publish(token, key_authorization)
        answers.append((challenge, response))
    return answers


async def _withdraw_all(withdraw: Withdraw, tokens: list[str]) -> None:
    for token in tokens:
        try:
            await withdraw(token)
        except Exception:  # a stale answer file is harmless; the issue's outcome matters more
            log.warning("could not withdraw the ACME challenge %s", token, exc_info=True)


def _http01(authz: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authz.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    raise AcmeFailed(f"{_name(authz)}: the ACME server offers no HTTP-01 "
                     "challenge for this name (Dockyard answers HTTP-01 only)")


def _authorization_failed(authz: messages.AuthorizationResource) -> AcmeFailed:
    problems = [c.error for c in authz.body.challenges if c.error is not None]
    reason = _problem(problems[0]) if problems else f"the authorization is {authz.body.status}"
    return AcmeFailed(f"{_name(authz)}: {reason}",
                      (problems[0].code or "") if problems else "")


def _problem(problem: messages.Error) -> str:
    return str(problem.detail or problem.description or problem.typ).strip()


def _names(authorizations: Sequence[messages.AuthorizationResource]) -> str:
    return ", ".join(_name(a) for a in authorizations)


def _name(authz: messages.AuthorizationResource) -> str:
    """The name as ordered (a wildcard's authorization holds the name without its `*.`)."""
    return f"{'*.' if authz.body.wildcard else ''}{authz.body.identifier.value}"


def _root_cause(error: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error ("Connection refused")."""
    while (inner := error.__cause__ or error.__context__) is not None:
        error = inner
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _unexpected(error: Exception) -> str:
    answer = error.args[0] if error.args else None
    if isinstance(answer, requests.Response):
        return f"HTTP {answer.status_code} from {answer.url}"
    return str(error)


def _account_jwk(account_key_pem: str) -> JWKEC:
    try:
        key = serialization.load_pem_private_key(account_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidInput("the ACME account key must be an ECDSA P-256 private key (PEM)")
    return JWKEC(key=key)


def _new_ec_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _dns_names(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower() for name in names.get_values_for_type(x509.DNSName))
