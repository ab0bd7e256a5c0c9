"""The domain model of PRODUCT.md as tables. Every change to them leaves an audit row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column, validates

from dockyard.models.base import Base, IdMixin, TimestampMixin, utcnow
from dockyard.models.emails import email_skeleton, normalize_email
from dockyard.models.enums import (
    AuditAction,
    DeploymentStatus,
    Role,
    ServerStatus,
    ServiceKind,
    SourceKind,
)


def _enum(cls: type) -> SAEnum:
    return SAEnum(cls, native_enum=False, values_callable=lambda e: [m.value for m in e], length=20)


def _fk(target: str, *, nullable: bool = False, cascade: bool = True) -> Any:
    ondelete = "CASCADE" if cascade else "SET NULL"
    return mapped_column(
        String(32), ForeignKey(target, ondelete=ondelete), nullable=nullable, index=True
    )


class Workspace(IdMixin, TimestampMixin, Base):
    __tablename__ = "workspaces"
    __audit_hidden__ = frozenset({"agent_secret_ciphertext"})
    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # The secret every node agent of this workspace derives its key from (encrypted).
    agent_secret_ciphertext: Mapped[str] = mapped_column(Text, default="")


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __audit_hidden__ = frozenset({"password_hash"})
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # What the address looks like (see models.emails): look-alike addresses collide here.
    email_skeleton: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)

    @validates("email")
    def _normalize(self, _key: str, email: str) -> str:
        self.email_skeleton = email_skeleton(email)
        return normalize_email(email)


class Membership(IdMixin, TimestampMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    user_id: Mapped[str] = _fk("users.id")
    role: Mapped[Role] = mapped_column(_enum(Role))


class ApiToken(IdMixin, TimestampMixin, Base):
    __tablename__ = "api_tokens"
    __audit_hidden__ = frozenset({"token_hash"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    user_id: Mapped[str] = _fk("users.id")
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Lineage: the token or login session that minted this one; a cap on the member's role.
    parent_token_id: Mapped[str | None] = _fk("api_tokens.id", nullable=True)
    session_id: Mapped[str | None] = _fk("user_sessions.id", nullable=True, cascade=False)
    role: Mapped[Role | None] = mapped_column(_enum(Role), default=None)


class ProviderCredential(IdMixin, TimestampMixin, Base):
    __tablename__ = "provider_credentials"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    __audit_hidden__ = frozenset({"token_ciphertext"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    provider: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(63))
    token_ciphertext: Mapped[str] = mapped_column(Text)


class Project(IdMixin, TimestampMixin, Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(500), default="")
    # How many preview environments (one per open pull request) the project may run at once.
    preview_limit: Mapped[int] = mapped_column(Integer, default=3, server_default=text("3"))


class Service(IdMixin, TimestampMixin, Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    project_id: Mapped[str] = _fk("projects.id")
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[ServiceKind] = mapped_column(_enum(ServiceKind))
    image: Mapped[str | None] = mapped_column(String(512), default=None)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A preview environment: the app it previews and the pull request it runs.
    preview_of: Mapped[str | None] = _fk("services.id", nullable=True)
    preview_number: Mapped[int | None] = mapped_column(Integer, default=None)


class RepoLink(IdMixin, TimestampMixin, Base):
    """A service linked to a forge repository and branch: pushes there deploy it (verified by
    the link's webhook secret), and with previews on, each pull request gets its own copy."""

    __tablename__ = "repo_links"
    __audit_hidden__ = frozenset({"secret_ciphertext", "credential_ciphertext"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("services.id", ondelete="CASCADE"), unique=True)
    # Who linked it: webhook deployments act as this member, with their role of today.
    user_id: Mapped[str] = _fk("users.id")
    repo_url: Mapped[str] = mapped_column(String(1000))
    # The URL's comparable form (host/path, lowercase, no scheme, user or .git) for lookup.
    repo_key: Mapped[str] = mapped_column(String(1000), index=True)
    branch: Mapped[str] = mapped_column(String(255), default="main")
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    # none | token | deploy_key; the token or private key itself, encrypted.
    credential_kind: Mapped[str] = mapped_column(String(20), default="none")
    credential_ciphertext: Mapped[str] = mapped_column(Text, default="")
    previews: Mapped[bool] = mapped_column(default=False)
    # Cloudflare credential that gets each preview's DNS record ("" = no DNS record).
    preview_dns_credential: Mapped[str] = mapped_column(String(63), default="")


class HookDelivery(IdMixin, TimestampMixin, Base):
    """One verified webhook delivery and what came of it. Redeliveries share `delivery_id`.
    The forge's log, not the audit trail's: a deployment it starts has its own history rows,
    as the member who linked the repository."""

    __tablename__ = "hook_deliveries"
    __audited__ = False
    __table_args__ = (UniqueConstraint("link_id", "delivery_id"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    link_id: Mapped[str] = _fk("repo_links.id")
    provider: Mapped[str] = mapped_column(String(20))
    delivery_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(40))  # push | pull_request | ping | other
    ref: Mapped[str] = mapped_column(String(255), default="")
    commit: Mapped[str] = mapped_column(String(64), default="")
    pull_request: Mapped[int | None] = mapped_column(Integer, default=None)
    action: Mapped[str] = mapped_column(String(20), default="", server_default="")  # opened...
    # deployed | ignored | refused | removed | failed | queued | superseded
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    deployment_id: Mapped[str | None] = _fk("deployments.id", nullable=True, cascade=False)


class Server(IdMixin, TimestampMixin, Base):
    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    provider: Mapped[str] = mapped_column(String(40))
    provider_id: Mapped[str] = mapped_column(String(100), default="")
    name: Mapped[str] = mapped_column(String(63))
    ip: Mapped[str] = mapped_column(String(45), default="")
    region: Mapped[str] = mapped_column(String(40), default="")
    size: Mapped[str] = mapped_column(String(60), default="")
    agent_version: Mapped[str | None] = mapped_column(String(40), default=None)
    agent_port: Mapped[int] = mapped_column(Integer, default=8421)
    agent_fingerprint: Mapped[str] = mapped_column(String(95), default="")
    agent_insecure_http: Mapped[bool] = mapped_column(default=False)
    status: Mapped[ServerStatus] = mapped_column(_enum(ServerStatus), default=ServerStatus.PENDING)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What its node runs that differs from what it should (models.reconcile.Drift, as JSON)
    drift: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Set while drained: its services' traffic and DNS go to the other servers
    drained_at: Mapped[datetime | None] = mapped_column(default=None)
    # The cloud-init script version a provisioned server booted with (0: not provisioned)
    cloud_init_version: Mapped[int] = mapped_column(Integer, default=0)


class Snapshot(IdMixin, TimestampMixin, Base):
    """A Dockyard snapshot at DigitalOcean: the agent and its dependencies, no secret."""

    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("workspace_id", "provider_id"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    provider_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(255))
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    agent_version: Mapped[str] = mapped_column(String(60))
    requirements_digest: Mapped[str] = mapped_column(String(64))
    cloud_init_version: Mapped[int] = mapped_column(Integer)


class SnapshotBuild(IdMixin, TimestampMixin, Base):
    """A snapshot build's droplet reports done once, with a random token (kept hashed)."""

    __tablename__ = "snapshot_builds"
    workspace_id: Mapped[str] = _fk("workspaces.id")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class Placement(IdMixin, TimestampMixin, Base):
    """service_servers: which servers run which services."""

    __tablename__ = "service_servers"
    __table_args__ = (UniqueConstraint("service_id", "server_id"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = _fk("services.id")
    server_id: Mapped[str] = _fk("servers.id")
    # Whether this server's copy takes traffic (DNS, load balancing): up | down
    traffic: Mapped[str] = mapped_column(String(10), default="up")
    traffic_reason: Mapped[str] = mapped_column(Text, default="")
    traffic_changed_at: Mapped[datetime | None] = mapped_column(default=None)


class Deployment(IdMixin, TimestampMixin, Base):
    """One attempt to put a version of a service on its servers; a release when it succeeds."""

    __tablename__ = "deployments"
    __audit_hidden__ = frozenset({"env_ciphertext"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = _fk("services.id")
    source_kind: Mapped[SourceKind] = mapped_column(_enum(SourceKind))
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_tag: Mapped[str | None] = mapped_column(String(512), default=None)
    env_ciphertext: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[DeploymentStatus] = mapped_column(
        _enum(DeploymentStatus), default=DeploymentStatus.QUEUED
    )
    triggered_by: Mapped[str | None] = _fk("users.id", nullable=True, cascade=False)
    rollback_of: Mapped[str | None] = mapped_column(String(32), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    # Where the engine is (build, rollout, commit, done) and what each server holds: enough
    # for a restarted control plane to finish or undo the deployment.
    phase: Mapped[str] = mapped_column(String(20), default="")
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# At most one deployment of a service is active: the database itself refuses a second one.
_ACTIVE = text("status IN ('queued', 'running')")
Index("uq_deployments_one_active", Deployment.service_id, unique=True,
      sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)


class DeploymentEvent(Base):
    """The event log of a deployment; append-only, so it has no audit rows of its own."""

    __tablename__ = "deployment_events"
    __table_args__ = (UniqueConstraint("deployment_id", "seq"),)
    __audited__ = False
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[str] = _fk("deployments.id")
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeployConfig(IdMixin, TimestampMixin, Base):
    __tablename__ = "deploy_configs"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str | None] = _fk("services.id", nullable=True)
    name: Mapped[str] = mapped_column(String(63))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EnvVar(IdMixin, TimestampMixin, Base):
    __tablename__ = "env_vars"
    __table_args__ = (UniqueConstraint("service_id", "key"),)
    __audit_hidden__ = frozenset({"value_ciphertext"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = _fk("services.id")
    key: Mapped[str] = mapped_column(String(255))
    value_ciphertext: Mapped[str] = mapped_column(Text)
    is_secret: Mapped[bool] = mapped_column(default=False)


class Domain(IdMixin, TimestampMixin, Base):
    """A hostname routed to a service on every server that runs it, with its certificate
    (how it is obtained, the live one, the key encrypted) and its DNS at Cloudflare."""

    __tablename__ = "domains"
    __audit_hidden__ = frozenset({"key_ciphertext"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = _fk("services.id")
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    # none | pending | live | failed
    certificate_status: Mapped[str] = mapped_column(String(20), default="none")
    certificate_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    tls: Mapped[str] = mapped_column(String(20), default="acme")  # acme | cloudflare | none
    acme_directory: Mapped[str] = mapped_column(String(500), default="")
    redirect_https: Mapped[bool] = mapped_column(default=True)
    hsts: Mapped[bool] = mapped_column(default=False)
    certificate_pem: Mapped[str] = mapped_column(Text, default="")
    key_ciphertext: Mapped[str] = mapped_column(Text, default="")
    certificate_error: Mapped[str] = mapped_column(Text, default="")
    certificate_renewed_at: Mapped[datetime | None] = mapped_column(default=None)
    dns_credential: Mapped[str] = mapped_column(String(63), default="")  # "" = no DNS
    dns_proxied: Mapped[bool] = mapped_column(default=False)
    dns_status: Mapped[str] = mapped_column(String(20), default="none")  # none | synced | failed
    dns_error: Mapped[str] = mapped_column(Text, default="")
    dns_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)  # as last synced


class AuditEvent(Base):
    """A history row: who changed which record, when, and its values before and after."""

    __tablename__ = "audit_events"
    __audited__ = False
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    workspace_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    actor_user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    actor_token_id: Mapped[str | None] = mapped_column(String(32), default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    action: Mapped[AuditAction] = mapped_column(_enum(AuditAction))
    entity_type: Mapped[str] = mapped_column(String(40), index=True)
    entity_id: Mapped[str] = mapped_column(String(32), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class UserSession(IdMixin, TimestampMixin, Base):
    """One password login; its id is the `sid` of the JWT, which works while this row is live."""

    __tablename__ = "user_sessions"
    user_id: Mapped[str] = _fk("users.id")
    expires_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Invitation(IdMixin, TimestampMixin, Base):
    """A single-use offer to join a workspace with a role; only the secret's hash is kept."""

    __tablename__ = "invitations"
    __audit_hidden__ = frozenset({"token_hash"})
    workspace_id: Mapped[str] = _fk("workspaces.id")
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[Role] = mapped_column(_enum(Role))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str | None] = _fk("users.id", nullable=True, cascade=False)
    expires_at: Mapped[datetime] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    accepted_by: Mapped[str | None] = _fk("users.id", nullable=True, cascade=False)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LogLine(Base):
    """One line a container of a service wrote, as its agent buffered it; append-only and
    pruned by age and size, so it has no audit rows of its own."""

    __tablename__ = "log_lines"
    __table_args__ = (Index("ix_log_lines_service_time", "service_id", "time"),)
    __audited__ = False
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    workspace_id: Mapped[str] = _fk("workspaces.id")
    service_id: Mapped[str] = _fk("services.id")
    server_id: Mapped[str | None] = _fk("servers.id", nullable=True, cascade=False)
    server_name: Mapped[str] = mapped_column(String(63), default="")
    process_type: Mapped[str] = mapped_column(String(40), default="web")
    replica: Mapped[int] = mapped_column(Integer, default=0)
    release: Mapped[str] = mapped_column(String(32), default="", index=True)
    container: Mapped[str] = mapped_column(String(128), default="")
    stream: Mapped[str] = mapped_column(String(6))
    time: Mapped[datetime] = mapped_column()
    line: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(Integer, default=0)


class LogCursor(Base):
    """How far the control plane has read each server's log buffer (its sequence number)."""

    __tablename__ = "log_cursors"
    __audited__ = False
    server_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    lost: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServerEvent(Base):
    """A correction the reconciler made on a server (or failed to make), in a sentence;
    append-only, so it has no audit rows of its own."""

    __tablename__ = "server_events"
    __audited__ = False
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    server_id: Mapped[str] = _fk("servers.id")
    time: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
