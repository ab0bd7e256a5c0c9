"""API bodies of repository links and webhook deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from dockyard.models.fields import GitRef, GitUrl, Name, ProviderToken, Whole
from dockyard.models.hooks import Outcome
from dockyard.models.schemas import Input, Output

PRIVATE_KEY = (r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=:,\- \r\n]+"
               r"-----END [A-Z0-9 ]*PRIVATE KEY-----\s*")
DeployKey = Annotated[str, Field(min_length=1, max_length=16 * 1024), Whole(
    PRIVATE_KEY, "paste the deploy key's private key as ssh-keygen wrote it, from "
                 "'-----BEGIN ... PRIVATE KEY-----' to '-----END ... PRIVATE KEY-----', "
                 "without a passphrase")]
CredentialKind = Literal["none", "token", "deploy_key"]


class RepoLinkSet(Input):
    """Link a service to a repository and branch; pushes there deploy it."""

    repo_url: GitUrl = Field(description="The repository's clone URL (https or ssh).")
    branch: GitRef = Field(default="main", description="The branch whose pushes deploy.")
    previews: bool = Field(default=False, description=(
        "Deploy each pull request to its own preview service."))
    preview_dns_credential: Name | None = Field(default=None, description=(
        "A Cloudflare credential of the workspace that gets each preview's DNS record."))
    token: ProviderToken | None = Field(default=None, description=(
        "An HTTPS access token for a private repository: 'user:token', or the token alone "
        "(sent as user x-access-token). Stored encrypted, never shown."))
    deploy_key: DeployKey | None = Field(default=None, description=(
        "An SSH deploy key's private key for a private repository (ssh URL). Stored "
        "encrypted, never shown."))

    @model_validator(mode="after")
    def _one_credential(self) -> RepoLinkSet:
        if self.token is not None and self.deploy_key is not None:
            raise ValueError("give a token or a deploy key, not both")
        return self


class RepoLinkPublic(Output):
    project: str
    service: str
    repo_url: str
    branch: str
    previews: bool
    preview_dns_credential: str | None
    credential: CredentialKind = Field(description="The kind of credential stored (never it).")
    webhook_urls: dict[str, str] = Field(description=(
        "The URL to paste into each forge's webhook settings, by provider."))
    created_at: datetime
    updated_at: datetime


class RepoLinkSecret(RepoLinkPublic):
    secret: str = Field(description=(
        "The webhook secret Dockyard generated: paste it into the forge now; it is not "
        "shown again (rotate it to get a new one)."))
    previews_removed: list[str] = Field(default_factory=list, description=(
        "The preview services taken down because previews were turned off."))


class RepoUnlinked(Output):
    project: str
    service: str
    previews_removed: list[str] = Field(description=(
        "The preview services taken down with the link (nothing would close them later)."))


class DeliveryPublic(Output):
    id: str
    provider: str
    delivery_id: str
    event: str
    ref: str
    commit: str
    pull_request: int | None
    action: str = Field(description="A pull request's: opened, updated or closed.")
    outcome: Outcome = Field(description=(
        "queued: waits for the service's running deployment to end; superseded: a newer "
        "delivery for the same service (named in detail) was acted on instead."))
    detail: str
    deployment_id: str | None
    created_at: datetime


class HookResult(Output):
    """What Dockyard did with a delivery for one linked service."""

    project: str
    service: str
    outcome: Outcome | Literal["duplicate"]
    detail: str
    deployment_id: str | None = None


class HookAnswer(Output):
    """The answer to a forge (it shows it in its delivery log): one result per service
    linked to the repository whose secret signed the delivery."""

    results: list[HookResult]
