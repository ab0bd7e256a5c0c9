"""API schemas: XCreate / XUpdate for input, XPublic for output."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from dockyard.agent.release import code_version
from dockyard.models.app_metrics import FileSystemUsage
from dockyard.models.enums import AuditAction, Role, ServerStatus, ServiceKind
from dockyard.models.fields import (
    AnyPassword,
    EnvKey,
    EnvKeyName,
    EnvValue,
    Fingerprint,
    HealthPath,
    ImageRef,
    IpAddress,
    MultiLine,
    Name,
    ProviderToken,
    SingleLine,
)
from dockyard.models.reconcile import Drift


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenResponse(Output):
    access_token: str
    token_type: str = "bearer"  # noqa: S105


class UserPublic(Output):
    id: str
    email: str
    display_name: str


class WhoAmI(Output):
    user: UserPublic
    workspace_id: str
    workspace_name: str
    role: Role
    via_api_token: bool


class WorkspaceCreate(Input):
    name: Name
    display_name: SingleLine = ""


class WorkspaceUpdate(Input):
    display_name: SingleLine | None = None


class WorkspacePublic(Output):
    id: str
    name: str
    display_name: str
    role: Role
    created_at: datetime


class MemberUpdate(Input):
    role: Role


class MemberPublic(Output):
    user_id: str
    email: str
    role: Role
    created_at: datetime


class ApiTokenCreate(Input):
    name: Name
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    role: Role | None = Field(
        default=None, description="Cap the token at this role (at most your own role)."
    )
    password: AnyPassword | None = Field(default=None, description=(
        "Your password, typed again: only then may a token made from a login session outlive "
        "that session (without it, the token expires when the session does)."))


class ApiTokenPublic(Output):
    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    role: Role | None = Field(description="The token's role cap; none: the member's role.")
    parent_token_id: str | None = Field(description="The token that created this one.")


class ApiTokenCreated(ApiTokenPublic):
    token: str = Field(description="Shown once; store it now.")


class ProjectCreate(Input):
    name: Name
    description: MultiLine = ""


class ProjectUpdate(Input):
    name: Name | None = None
    description: MultiLine | None = None
    preview_limit: int | None = Field(default=None, ge=0, le=50, description=(
        "How many preview environments (one per open pull request) may run at once."))


class ProjectPublic(Output):
    id: str
    name: str
    description: str
    preview_limit: int
    created_at: datetime
    updated_at: datetime


class ServiceConfig(Input):
    port: int = Field(default=8000, ge=1, le=65535, description="Port the app listens on.")
    health_path: HealthPath = "/"
    replicas: int = Field(default=1, ge=1, le=50)


class ServiceCreate(Input):
    name: Name
    kind: ServiceKind = ServiceKind.APP
    image: ImageRef | None = None
    config: ServiceConfig = Field(default_factory=ServiceConfig)


class ServiceUpdate(Input):
    name: Name | None = None
    image: ImageRef | None = None
    config: ServiceConfig | None = None


class ServicePublic(Output):
    id: str
    project_id: str
    name: str
    kind: ServiceKind
    image: str | None
    config: ServiceConfig
    created_at: datetime
    updated_at: datetime
    urls: list[str] = Field(default_factory=list, description=(
        "Where the app answers on the servers it runs on (filled when one service is read)."))


class ServerAdopt(Input):
    """A server that already runs a Dockyard agent installed with this workspace's key."""

    name: Name
    ip: IpAddress
    agent_port: int = Field(default=8421, ge=1, le=65535)
    provider: Literal["local", "cluster", "manual"] = "manual"
    agent_fingerprint: Fingerprint | None = Field(default=None, description=(
        "SHA-256 of the agent's certificate as `dockyard-agent fingerprint` prints it; "
        "without it, the certificate the agent presents now is pinned"))
    insecure_http: bool = Field(default=False, description=(
        "Talk plain HTTP to this agent (DOCKYARD_AGENT_TLS=false): private networks only"))


class DownCopy(Output):
    """A server's copy of a service that the traffic watch marked down (out of DNS)."""

    service: str = Field(description="project/service")
    reason: str
    since: datetime | None


class ServerPublic(Output):
    id: str
    workspace_id: str
    name: str
    provider: str
    provider_id: str
    ip: str
    agent_port: int
    agent_fingerprint: str
    agent_insecure_http: bool
    region: str
    size: str
    agent_version: str | None
    status: ServerStatus
    status_reason: str = ""
    drift: list[Drift] = Field(default_factory=list, description=(
        "What its node runs that differs from what it should, until the reconciler "
        "corrects it"))
    drained_at: datetime | None = Field(default=None, description=(
        "When it was drained: its services' traffic and DNS go to the other servers"))
    down_copies: list[DownCopy] = Field(default_factory=list, description=(
        "Its copies of services marked down by the traffic watch (out of DNS), with why"))
    disk: list[FileSystemUsage] = Field(default_factory=list, description=(
        "The file systems its agent writes to (Docker's data root, the agent's state), as "
        "last reported: below the disk floor deploys to it are refused"))
    tags: list[str]
    cloud_init_version: int = Field(default=0, description=(
        "The cloud-init script version a provisioned server booted with (0: not provisioned)"))
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drained(self) -> bool:
        return self.drained_at is not None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def agent_expected_version(self) -> str:
        """The version of this control plane's agent code (`dockyard servers upgrade`)."""
        return code_version()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def agent_current(self) -> bool:
        """Whether the agent runs the version this control plane expects."""
        return self.agent_version == code_version()


class AgentKeyPublic(Output):
    key: str = Field(description="Hex key to install in a node agent's key file (0600).")
    expected_version: str


class CredentialSet(Input):
    provider: Literal["digitalocean", "cloudflare"]
    token: ProviderToken


class CredentialPublic(Output):
    name: str
    provider: str
    token: str = Field(description="Always ******** once stored.")
    updated_at: datetime


class EnvVarSet(Input):
    value: EnvValue
    secret: bool = False


class EnvVarItem(EnvVarSet):
    key: EnvKey


class EnvPatch(Input):
    set: list[EnvVarItem] = Field(default_factory=list, max_length=500)
    unset: list[EnvKeyName] = Field(default_factory=list, max_length=500)


class EnvVarPublic(Output):
    key: str
    value: str = Field(description=(
        "The value, or ******** for a secret (an injected URL shows its password as "
        "******** unless an admin asks for it)."))
    secret: bool
    updated_at: datetime | None = Field(description="None for an injected variable.")
    source: Literal["user", "injected"] = Field(default="user", description=(
        "`injected`: the URL of a stateful service of the project, given at every deploy."))
    stateful_service: str | None = Field(default=None, description=(
        "The stateful service that injects this variable; for a variable of the user, the "
        "one whose URL it replaces."))


class AppRedeploy(Output):
    """One app of a project rolled out again for its project's stateful services: its
    deployment, or why none started (`skipped`)."""

    service: str
    deployment_id: str | None = None
    skipped: str = ""


class AuditEventPublic(Output):
    id: int
    action: AuditAction
    entity_type: str
    entity_id: str
    actor_user_id: str | None
    actor_token_id: str | None
    request_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class Health(Output):
    status: str
    version: str
    database: str


class ErrorBody(Output):
    detail: Any


class PreviewPublic(Output):
    """A pull request's preview environment and its latest deployment."""

    service: str
    of: str = Field(description="The app it previews.")
    pull_request: int
    host: str
    url: str
    commit: str = Field(description="The head commit of its latest deployment.")
    status: str = Field(description="Its latest deployment's status ('none' before one).")
    deployment_id: str | None
    created_at: datetime
