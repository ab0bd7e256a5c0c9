"""Certificates of domains: obtained from an ACME directory (HTTP-01 answered by the edge of
every server that runs the service) or as a Cloudflare origin certificate, stored with the
key encrypted, installed on every such server; renewed by a periodic job of the worker well
before they expire. Each outcome is in the domain's row (audited) and a server event."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import CertificateInstall, InstalledCertificate
from dockyard.core import agents, credentials, dns, domain_nodes, logcollect
from dockyard.core.domain_nodes import Outcome
from dockyard.core.platform import Platform
from dockyard.deploy.run import Connect
from dockyard.kernel.errors import DockyardError
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.models.base import utcnow
from dockyard.models.domain_schemas import TlsMode
from dockyard.models.domains import AcmeAccount
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Domain, Placement, ServerEvent
from dockyard.providers.cloudflare import CloudflareDns

if TYPE_CHECKING:
    from dockyard.providers import acme

log = logging.getLogger("dockyard.certify")
RENEW_TASK = "domains.renew"
ORIGIN_DAYS = 5475  # Cloudflare's longest origin certificate: 15 years
RETRY_FAILED = timedelta(hours=1)


@dataclass(frozen=True)
class Wanted:
    """One domain's certificate to obtain, and where it goes."""

    domain_id: str
    workspace_id: str
    hostname: str
    tls: TlsMode
    directory: str
    dns_credential: str
    servers: list[ServerPublic]
    key_pem: str | None  # of the live certificate: a renewal keeps it


async def certify(p: Platform, connect: Connect, domain_id: str) -> None:
    """Obtain the domain's certificate, store it and install it on its servers; a failure
    is recorded on the domain (a live certificate stays live until it expires)."""
    wanted = await p.db.read(lambda s: _wanted(p, s, domain_id))
    if wanted is None or wanted.tls is TlsMode.NONE:
        return
    try:
        chain, key = await _obtain(p, connect, wanted)
    except DockyardError as exc:
        await _failed(p, wanted, exc.message)
        return
    await _store(p, wanted, chain, key)
    await install(p, connect, domain_id)


async def _wanted(p: Platform, s: AsyncSession, domain_id: str) -> Wanted | None:
    row = await s.get(Domain, domain_id)
    if row is None:
        return None
    servers = await domain_nodes.servers_running(s, row.service_id)
    key = p.box.decrypt(row.key_ciphertext) if row.key_ciphertext else None
    return Wanted(row.id, row.workspace_id, row.hostname, TlsMode(row.tls),
                  row.acme_directory or p.settings.acme_directory_url, row.dns_credential,
                  servers, key)


async def _obtain(p: Platform, connect: Connect, wanted: Wanted) -> tuple[str, str]:
    """The certificate chain and key (PEM)."""
    if wanted.tls is TlsMode.CLOUDFLARE:
        return await _origin(p, wanted)
    if not wanted.servers:
        raise DockyardError(f"{wanted.hostname}: its service runs on no server yet, so no edge "
                            "can answer the ACME challenge; deploy it first")
    issued = await _acme(p, connect, wanted)
    return issued.certificate_pem, issued.key_pem


async def _acme(p: Platform, connect: Connect, wanted: Wanted) -> acme.IssuedCertificate:
    from dockyard.providers import acme  # the ACME client (~10 MB) only once a domain needs it

    issuer = acme.AcmeIssuer(wanted.directory, p.settings.acme_ca_bundle)
    try:
        return await _issue(p, connect, wanted, issuer)
    except acme.AcmeFailed as exc:
        if exc.code != "accountDoesNotExist":
            raise
        await _forget_account(p, wanted)  # the directory forgot it: register anew
        return await _issue(p, connect, wanted, issuer)


async def _issue(p: Platform, connect: Connect, wanted: Wanted, issuer: acme.AcmeIssuer
                 ) -> acme.IssuedCertificate:
    key, url = await _account(p, issuer, wanted)

    async def publish(token: str, key_authorization: str) -> None:
        step = domain_nodes.put_challenge(token, key_authorization)
        outcome = await domain_nodes.on_every(connect, wanted.servers, step)
        if not outcome.done:
            raise DockyardError("no server could publish the ACME challenge: "
                                + "; ".join(outcome.failed))

    async def withdraw(token: str) -> None:
        await domain_nodes.on_every(connect, wanted.servers, domain_nodes.remove_challenge(token))

    return await issuer.issue(key, url, [wanted.hostname], publish, withdraw, wanted.key_pem)


async def _account(p: Platform, issuer: acme.AcmeIssuer, wanted: Wanted) -> tuple[str, str]:
    """The workspace's account key and URL at the directory, registered on first use."""
    def find(s: AsyncSession) -> Any:
        return s.scalar(select(AcmeAccount).where(
            AcmeAccount.workspace_id == wanted.workspace_id,
            AcmeAccount.directory_url == wanted.directory))

    found = await p.db.read(find)
    if found is not None:
        return p.box.decrypt(found.key_ciphertext), found.account_url
    from dockyard.providers.acme import new_account_key

    key = new_account_key()
    url = await issuer.register(key, p.settings.acme_email)

    async def save(s: AsyncSession) -> None:
        if await find(s) is None:
            s.add(AcmeAccount(workspace_id=wanted.workspace_id, directory_url=wanted.directory,
                              key_ciphertext=p.box.encrypt(key), account_url=url,
                              email=p.settings.acme_email))

    await p.db.write(save)
    return key, url


async def _forget_account(p: Platform, wanted: Wanted) -> None:
    async def tx(s: AsyncSession) -> None:
        found = await s.scalar(select(AcmeAccount).where(
            AcmeAccount.workspace_id == wanted.workspace_id,
            AcmeAccount.directory_url == wanted.directory))
        if found is not None:
            await s.delete(found)

    await p.db.write(tx)


async def _origin(p: Platform, wanted: Wanted) -> tuple[str, str]:
    token = await credentials.provider_token(p, wanted.workspace_id, wanted.dns_credential)
    key = ec.generate_private_key(ec.SECP256R1())
    async with CloudflareDns(token, p.settings.cloudflare_api_url) as dns:
        issued = await dns.origin_certificate([wanted.hostname], _csr(key, wanted.hostname),
                                              ORIGIN_DAYS)
    return issued.certificate_pem, _pem(key)


def _csr(key: ec.EllipticCurvePrivateKey, hostname: str) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


async def _store(p: Platform, wanted: Wanted, chain: str, key: str) -> None:
    from dockyard.providers.acme import certificate_facts

    facts = certificate_facts(chain)

    async def tx(s: AsyncSession) -> None:
        row = await s.get(Domain, wanted.domain_id)
        if row is not None:
            row.certificate_pem, row.key_ciphertext = chain, p.box.encrypt(key)
            row.certificate_expires_at, row.certificate_renewed_at = facts.not_after, utcnow()
            row.certificate_status, row.certificate_error = "live", ""

    await p.db.write(tx)


async def _failed(p: Platform, wanted: Wanted, why: str) -> None:
    log.warning("certificate of %s not obtained: %s", wanted.hostname, why)

    async def tx(s: AsyncSession) -> None:
        row = await s.get(Domain, wanted.domain_id)
        if row is None:
            return
        row.certificate_error = why[:2000]
        if row.certificate_status != "live":
            row.certificate_status = "failed"
        s.add_all(ServerEvent(server_id=server.id, kind="certificate",
                              message=f"certificate of {wanted.hostname} failed: {why}"[:2000])
                  for server in wanted.servers)

    await p.db.write(tx)


async def install(p: Platform, connect: Connect, domain_id: str) -> Outcome:
    """Put the domain's live certificate on every server of its service."""
    found = await p.db.read(lambda s: _installable(p, s, domain_id))
    if found is None:
        return Outcome([], [])
    hostname, install_body, servers = found
    step = domain_nodes.install_certificate(hostname, install_body)
    outcome = await domain_nodes.on_every(connect, servers, step)
    await _installed_events(p, hostname, servers, outcome)
    return outcome


async def _installable(p: Platform, s: AsyncSession, domain_id: str
                       ) -> tuple[str, CertificateInstall, list[ServerPublic]] | None:
    row = await s.get(Domain, domain_id)
    if row is None or row.certificate_status != "live":
        return None
    return (row.hostname, certificate_install(p, row),
            await domain_nodes.servers_running(s, row.service_id))


def certificate_install(p: Platform, row: Domain) -> CertificateInstall:
    return CertificateInstall(certificate_pem=row.certificate_pem,
                              key_pem=p.box.decrypt(row.key_ciphertext),
                              redirect_https=row.redirect_https, hsts=row.hsts)


async def _installed_events(p: Platform, hostname: str, servers: list[ServerPublic],
                            outcome: Outcome) -> None:
    async def tx(s: AsyncSession) -> None:
        s.add_all(ServerEvent(server_id=server.id, kind="certificate",
                              message=f"certificate of {hostname} installed")
                  for server in servers if server.name in outcome.done)

    await p.db.write(tx)


async def due_for_renewal(p: Platform) -> list[str]:
    """Domains whose certificate expires within the renewal window, or that have none yet
    (pending, or failed more than an hour ago)."""
    now = utcnow()
    horizon = now + timedelta(days=p.settings.certificate_renew_days)

    async def tx(s: AsyncSession) -> list[str]:
        rows = await s.scalars(select(Domain).where(Domain.tls != TlsMode.NONE.value))
        return [r.id for r in rows if _due(r, now, horizon)]

    return await p.db.read(tx)


def _due(row: Domain, now: datetime, horizon: datetime) -> bool:
    if row.certificate_status == "live":
        return row.certificate_expires_at is None or row.certificate_expires_at <= horizon
    return row.certificate_status == "pending" or row.updated_at <= now - RETRY_FAILED


async def renew_due(p: Platform, connect: Connect) -> int:
    due = await due_for_renewal(p)
    for domain_id in due:
        await certify(p, connect, domain_id)
    return len(due)


async def keep_certificates(p: Platform, server: ServerPublic, client: NodeAgentClient
                            ) -> list[str]:
    """The reconciler's part: the server holds exactly the live certificates of the domains
    of the services placed there (a server that was away, or a new one); what it did."""
    wanted = await p.db.read(lambda s: _wanted_on(p, s, server.id))
    try:
        held = {c.hostname: c for c in await client.certificates()}
    except AgentError as exc:
        if exc.status_code == 404:  # an agent too old to hold certificates
            return []
        raise
    done = []
    for hostname, body in wanted.items():
        if _differs(held.get(hostname), body):
            await client.install_certificate(hostname, body)
            done.append(f"installed the certificate of {hostname}")
    for hostname in held.keys() - wanted.keys():
        await client.remove_certificate(hostname)
        done.append(f"removed the certificate of {hostname} (no domain of this server)")
    return done


async def _wanted_on(p: Platform, s: AsyncSession, server_id: str
                     ) -> dict[str, CertificateInstall]:
    query = (select(Domain).join(Placement, Placement.service_id == Domain.service_id)
             .where(Placement.server_id == server_id, Domain.certificate_status == "live"))
    return {row.hostname: certificate_install(p, row) for row in await s.scalars(query)}


def _differs(held: InstalledCertificate | None, body: CertificateInstall) -> bool:
    if held is None:
        return True
    leaf = x509.load_pem_x509_certificate(body.certificate_pem.encode())
    return (held.sha256 != leaf.fingerprint(hashes.SHA256()).hex()
            or (held.redirect_https, held.hsts) != (body.redirect_https, body.hsts))


def connect_of(p: Platform) -> Connect:
    """Agents reached with their workspace's secret (for the worker's jobs)."""
    async def connect(server: ServerPublic) -> Any:
        return agents.client_for(server, await agents.secret_for(p, server.workspace_id), 60)

    return connect


TASKS = Tasks()
TASKS.every(RENEW_TASK, "*/10 * * * *", RENEW_TASK)


@TASKS.task(RENEW_TASK, max_attempts=1, coalesce=True)
async def renew_job(context: JobContext, payload: dict[str, Any]) -> None:
    """Certificates due for renewal; and DNS records a failed sync left behind (the traffic
    watch syncs only when traffic changes)."""
    p = logcollect._platform(context)
    await renew_due(p, connect_of(p))
    await dns.sync_all_dns(p, dns.default_dns_for(p.settings))
