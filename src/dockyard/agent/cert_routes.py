"""The agent's certificate and ACME challenge routes: what its edge serves over HTTPS, and
what it answers on plain HTTP for an ACME server. Nothing here reloads nginx."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from dockyard.agent.models import (
    AcmeChallenge,
    AcmeToken,
    CertificateInstall,
    InstalledCertificate,
    ServerName,
)
from dockyard.agent.node import Node

HostnamePath = Annotated[ServerName, Path()]
TokenPath = Annotated[AcmeToken, Path()]


def _node(request: Request) -> Node:  # as app.get_node, which this module cannot import
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(_node)]
router = APIRouter()


@router.put("/certificates/{hostname}", status_code=204)
async def install_certificate(hostname: HostnamePath, body: CertificateInstall,
                              node: NodeDep) -> None:
    """Install or replace the certificate of `hostname`: 422 when it does not parse, its key
    does not match, or it does not cover the name."""
    await node.install_certificate(hostname, body)


@router.get("/certificates")
async def list_certificates(node: NodeDep) -> list[InstalledCertificate]:
    return await node.installed_certificates()


@router.delete("/certificates/{hostname}", status_code=204)
async def remove_certificate(hostname: HostnamePath, node: NodeDep) -> None:
    """One that is gone already is no error."""
    await node.remove_certificate(hostname)


@router.put("/acme-challenges/{token}", status_code=204)
async def put_acme_challenge(token: TokenPath, body: AcmeChallenge, node: NodeDep) -> None:
    await node.put_acme_challenge(token, body.key_authorization)


@router.delete("/acme-challenges/{token}", status_code=204)
async def remove_acme_challenge(token: TokenPath, node: NodeDep) -> None:
    await node.remove_acme_challenge(token)
