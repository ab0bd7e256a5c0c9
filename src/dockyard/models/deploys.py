"""Deploy API schemas: what a deploy or rollback asks for, and what a deployment looks like."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from dockyard.models.enums import DeploymentStatus, SourceKind
from dockyard.models.fields import (
    AppPath,
    Argument,
    BuildArg,
    GitRef,
    GitUrl,
    HealthPath,
    IdPrefix,
    ImageRef,
    Name,
    ProcessType,
    Whole,
)
from dockyard.models.schemas import Input, Output

MAX_REPLICAS = 20
Replicas = Annotated[int, Field(ge=0, le=MAX_REPLICAS)]
Scale = Annotated[dict[ProcessType, Replicas], Field(
    max_length=20, json_schema_extra={"additionalProperties": False})]  # keys: types only
ServerRef = Name  # a server's name, or its id (32 hex digits are a name too)
CommitSha = Annotated[str, Whole(r"[a-f0-9]{40}|[a-f0-9]{64}",
                                 "use a full commit id: 40 (or 64) hex digits, lowercase")]


class DeployParams(Input):
    """How a service is deployed. Every field is optional: unset ones keep their default."""

    port: int | None = Field(default=None, ge=1, le=65535, description="Port the app listens on.")
    health_path: HealthPath | None = None
    health_interval_seconds: float | None = Field(default=None, gt=0, le=60)
    health_timeout_seconds: float | None = Field(default=None, gt=0, le=60)
    health_attempts: int | None = Field(default=None, ge=1, le=1000)
    grace_seconds: float | None = Field(
        default=None, ge=0, le=600, description="How long the old container drains.")
    stop_timeout_seconds: int | None = Field(default=None, ge=0, le=600)
    parallelism: int | None = Field(default=None, ge=1, le=100)
    keep_releases: int | None = Field(default=None, ge=1, le=100)
    memory_mb: int | None = Field(default=None, ge=6, le=1024 * 1024)
    cpus: float | None = Field(default=None, gt=0, le=256)
    command: list[Argument] | None = Field(default=None, max_length=256)
    base_image: ImageRef | None = None
    root: AppPath | None = Field(default=None, description="Build this subdirectory.")
    dockerfile: AppPath | None = Field(default=None, description="Build with this Dockerfile.")
    build_args: list[BuildArg] | None = Field(default=None, max_length=64)
    scale: Scale | None = Field(
        default=None,
        description="Replicas of each process type on every server (default 1 each).")


class Effective(Input):
    """Deploy parameters with every default filled in; what a release records."""

    port: int = 8000
    health_path: str = "/"
    health_interval_seconds: float = 1.0
    health_timeout_seconds: float = 2.0
    health_attempts: int = 60
    grace_seconds: float = 5.0
    stop_timeout_seconds: int = 10
    parallelism: int = 4
    keep_releases: int = 5
    memory_mb: int | None = None
    cpus: float | None = None
    command: list[str] | None = None
    base_image: str | None = None
    root: str | None = None
    dockerfile: str | None = None
    build_args: list[str] | None = None
    scale: dict[str, int] = Field(default_factory=dict)

    def replicas(self, kind: str) -> int:
        """How many containers of process type `kind` run on each server."""
        return self.scale.get(kind, 1)


class GitSource(Input):
    kind: Literal["git"]
    url: GitUrl
    ref: GitRef | None = None


class ImageSource(Input):
    kind: Literal["image"]
    image: ImageRef


class ReleaseSource(Input):
    """Run the live release again with the service's current variables (an env change)."""

    kind: Literal["release"]


Source = Annotated[GitSource | ImageSource | ReleaseSource, Field(discriminator="kind")]


class DeployTarget(Input):
    project: Name
    service: Name
    servers: list[ServerRef] | None = Field(
        default=None, max_length=100,
        description="Server names or ids; default: where the service runs, else every active "
                    "server.")
    config_name: Name | None = Field(default=None, description="A saved deploy config to use.")
    params: DeployParams | None = None


class ArchiveCommit(Input):
    """Where an uploaded archive came from, when it is a commit's tree (a `git push`): recorded
    in the deployment's source and shown in its history."""

    commit: CommitSha | None = None
    ref: GitRef | None = Field(default=None, description="The branch the commit was pushed to.")


class DeployRequest(DeployTarget):
    source: Source


class RollbackRequest(Input):
    project: Name
    service: Name
    release: IdPrefix | None = Field(
        default=None,
        description="Release id (or its first characters); default: the one before the live one.")


class DeploymentPublic(Output):
    id: str
    project: str
    service: str
    status: DeploymentStatus
    phase: str
    source_kind: SourceKind
    source: dict[str, Any]
    image_tag: str | None
    config: dict[str, Any]
    rollback_of: str | None
    triggered_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str
    live: bool = False


class ReleaseVariable(Output):
    """A variable a deployment runs with: what a rollback to it brings back."""

    key: str
    value: str = Field(description=(
        "The value, or ******** unless the service has it today as a variable that is not "
        "secret (a release does not record which were secret); an injected URL shows its "
        "password as ********."))
    secret: bool
    source: Literal["user", "injected"]


class ServiceRef(Input):
    project: Name
    service: Name


class DeployConfigCreate(Input):
    name: Name
    service: ServiceRef | None = Field(
        default=None, description="The service it is for; none: any service may use it.")
    params: DeployParams = Field(default_factory=DeployParams)


class DeployConfigPublic(Output):
    id: str
    name: str
    project: str | None
    service: str | None
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime
