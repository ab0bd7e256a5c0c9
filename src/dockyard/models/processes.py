"""What `ps` shows and what `run` asks for."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from dockyard.models.deploys import Scale, ServerRef
from dockyard.models.fields import Argument
from dockyard.models.schemas import Input, Output


class ProcessPublic(Output):
    """One container of a service on one server."""

    server: str
    type: str
    replica: int
    release: str | None = Field(description="The deployment whose container this is.")
    name: str
    state: str
    started_at: str | None
    restarts: int
    memory_bytes: int | None
    exit_code: int | None = Field(
        description="How its last run ended (also after Docker restarted it); null if never.")
    oom_killed: bool


class UnreachableServer(Output):
    server: str
    error: str


class ServiceDrift(Output):
    """A difference the reconciler found on a server for this service's containers or site
    and has not corrected yet (a stray inside its grace period, a correction that failed)."""

    server: str
    subject: str
    message: str
    since: datetime


class ProcessListing(Output):
    """Every process found, the servers that did not answer (their processes unknown), and
    where a server differs from what it should run for this service."""

    processes: list[ProcessPublic]
    unreachable: list[UnreachableServer]
    drift: list[ServiceDrift] = Field(default_factory=list)


class RunRequest(Input):
    command: list[Argument] = Field(min_length=1, max_length=256,
                                    description="The program and its arguments (no shell).")
    server: ServerRef | None = Field(default=None,
                                     description="Default: the first server the service runs on.")
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=86400,
        description="Kill the command after this long; default and upper bound: the "
                    "DOCKYARD_RUN_TIMEOUT_SECONDS setting.")


class ScaleRequest(Input):
    """Replicas per process type on each server the service runs on; unnamed types keep theirs."""

    scale: Scale = Field(min_length=1, examples=[{"web": 3, "worker": 2}])
