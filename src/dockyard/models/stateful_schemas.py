"""What the API takes and gives for stateful services (Postgres, Redis)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from dockyard.models.fields import ImageRef, Name, Whole
from dockyard.models.schemas import AppRedeploy, Input, Output

Version = Annotated[str, Field(max_length=20), Whole(
    r"[0-9]+(?:\.[0-9]+){0,2}", "use a version number like '16' or '7.2'")]


class StatefulCreate(Input):
    """A Postgres or Redis service: placed on `server` (else the least loaded), from the
    offline image or, with `version` or `image`, one its server pulls."""

    name: Name
    kind: Literal["postgres", "redis"]
    server: Name | None = Field(default=None, description="Server name; default: least loaded")
    version: Version | None = Field(default=None, description=(
        "Run the official image of this version (the server must be able to pull it); "
        "default: the offline image built from Debian packages"))
    image: ImageRef | None = Field(default=None, description="An image to run instead")
    memory_mb: int | None = Field(default=None, ge=16, le=1024 * 1024)
    redeploy: bool = Field(default=False, description=(
        "Redeploy the project's apps (zero downtime) so they get the new variable"))


class StatefulPublic(Output):
    """A stateful service as `services info` shows it; `url` is masked unless asked for by an
    admin."""

    project: str
    name: str
    kind: str
    server: str
    hostname: str
    port: int
    image: str
    version: str
    memory_mb: int | None
    variable: str
    url: str
    volume: str
    volume_bytes: int | None = None
    state: str = Field(description=(
        "running or stopped, as asked; starting while it is being created; changing while "
        "it is being started, stopped, re-keyed or deleted (the reconciler leaves it alone)"))
    container_state: str | None = Field(default=None, description=(
        "What Docker says of its container now (running, exited, ...); none if unreachable"))
    backup_schedule: str
    backup_retention: int
    created_at: datetime
    redeploys: list[AppRedeploy] = Field(default_factory=list, description=(
        "With `redeploy`: each app of the project rolled out again, or why not"))


class StatefulAction(Input):
    action: Literal["start", "stop", "restart"]
