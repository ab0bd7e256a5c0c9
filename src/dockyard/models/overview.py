"""The workspace at a glance (the dashboard's first page): its projects, and for each service
its live release, its state and its request rate of the last few minutes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from dockyard.models.enums import ServiceKind


class ServiceState(StrEnum):
    """What the service's last deployment says about it."""

    NEVER_DEPLOYED = "never_deployed"
    DEPLOYING = "deploying"
    RUNNING = "running"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STATEFUL = "stateful"  # Postgres, Redis: placed on a server, never deployed


class LiveRelease(BaseModel):
    """The release that serves the service now: its last successful deployment."""

    deployment_id: str
    image_tag: str | None
    live_since: datetime = Field(description="When that deployment finished")


class ServiceOverview(BaseModel):
    name: str
    kind: ServiceKind
    state: ServiceState = Field(description=(
        "From the last deployment's status: running (succeeded), deploying (queued or "
        "running), failed, cancelled; never_deployed without one; stateful for Postgres "
        "and Redis, which are not deployed"))
    last_deployment_id: str | None = None
    live: LiveRelease | None = None
    request_rate: float = Field(default=0.0, description=(
        "Requests per second over the overview's window, on every server together"))


class ProjectOverview(BaseModel):
    name: str
    description: str
    services: list[ServiceOverview]


class Overview(BaseModel):
    projects: list[ProjectOverview]
    rate_window_seconds: int = Field(description=(
        "How far back the request rates reach (up to the last collected 10 s)"))
