"""The agent's certificate and ACME challenge routes: what its edge serves over HTTPS, and
what it answers on plain HTTP for an ACME server. Nothing here reloads nginx."""

from __future__ import annotations

from dockyard.agent.models import (
    AcmeChallenge,
    AcmeToken,
    CertificateInstall,
    InstalledCertificate,
    ServerName,
)
from dockyard.agent.parts import Parts
from dockyard.agent.web import Call, Param, Routes, path

HOSTNAME: Param[str] = path("hostname", ServerName)
TOKEN: Param[str] = path("token", AcmeToken)
routes: Routes[Parts] = Routes()


@routes.put("/certificates/{hostname}", status=204, params=(HOSTNAME,), body=CertificateInstall)
async def install_certificate(call: Call[Parts]) -> None:
    """Install or replace the certificate of `hostname`: 422 when it does not parse, its key
    does not match, or it does not cover the name."""
    await call.parts.node.install_certificate(call[HOSTNAME], call.body(CertificateInstall))


@routes.get("/certificates")
async def list_certificates(call: Call[Parts]) -> list[InstalledCertificate]:
    return await call.parts.node.installed_certificates()


@routes.delete("/certificates/{hostname}", status=204, params=(HOSTNAME,))
async def remove_certificate(call: Call[Parts]) -> None:
    """One that is gone already is no error."""
    await call.parts.node.remove_certificate(call[HOSTNAME])


@routes.put("/acme-challenges/{token}", status=204, params=(TOKEN,), body=AcmeChallenge)
async def put_acme_challenge(call: Call[Parts]) -> None:
    body = call.body(AcmeChallenge)
    await call.parts.node.put_acme_challenge(call[TOKEN], body.key_authorization)


@routes.delete("/acme-challenges/{token}", status=204, params=(TOKEN,))
async def remove_acme_challenge(call: Call[Parts]) -> None:
    await call.parts.node.remove_acme_challenge(call[TOKEN])
