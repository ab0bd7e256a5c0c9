"""What the API takes and gives for domains."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, model_validator

from dockyard.models.fields import DomainName, HttpsUrl, Name
from dockyard.models.schemas import Input, Output


class TlsMode(StrEnum):
    ACME = "acme"  # HTTP-01 from Let's Encrypt or another ACME directory
    CLOUDFLARE = "cloudflare"  # a Cloudflare origin certificate (the name proxied by Cloudflare)
    NONE = "none"  # plain HTTP only


class DomainCreate(Input):
    """A hostname to route to a service on every server that runs it."""

    hostname: DomainName
    tls: TlsMode = Field(default=TlsMode.ACME, description=(
        "How the certificate is obtained: acme (default), cloudflare (origin certificate; "
        "needs dns_credential) or none"))
    acme_directory: HttpsUrl | None = Field(default=None, description=(
        "An ACME directory URL; default: the control plane's (Let's Encrypt)"))
    redirect_https: bool = Field(default=True, description=(
        "Redirect plain HTTP to HTTPS once the certificate is live"))
    hsts: bool = Field(default=False, description="Send Strict-Transport-Security over HTTPS")
    dns_credential: Name | None = Field(default=None, description=(
        "A stored Cloudflare credential: Dockyard then keeps the name's A/AAAA records"))
    dns_proxied: bool = Field(default=False, description="Proxy the records through Cloudflare")

    @model_validator(mode="after")
    def _coherent(self) -> DomainCreate:
        if self.tls is TlsMode.CLOUDFLARE and self.dns_credential is None:
            raise ValueError("tls 'cloudflare' needs a Cloudflare credential: pass "
                             "dns_credential (store one with `dockyard credentials set`)")
        if self.acme_directory is not None and self.tls is not TlsMode.ACME:
            raise ValueError("acme_directory applies only with tls 'acme'")
        return self


class DomainPublic(Output):
    hostname: str
    project: str
    service: str
    tls: TlsMode
    redirect_https: bool
    hsts: bool
    certificate_status: str = Field(description="none, pending, live or failed")
    certificate_expires_at: datetime | None
    certificate_renewed_at: datetime | None
    certificate_error: str
    dns_credential: str
    dns_proxied: bool
    dns_status: str = Field(description="none, synced or failed")
    dns_error: str
    dns_addresses: list[str]
    created_at: datetime
