"""What `autoscale set` sends and what the API shows of a policy and its decisions."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from dockyard.models.schemas import Input, Output

MAX_REPLICAS = 20  # per server, as `scale` counts them
DEFAULT_COOLDOWN_SECONDS = 60


class AutoscaleSet(Input):
    """Bounds of the `web` replicas (per server) and one target per replica."""

    min: int = Field(ge=1, le=MAX_REPLICAS, description="Never fewer web replicas per server.")
    max: int = Field(ge=1, le=MAX_REPLICAS, description="Never more web replicas per server.")
    target_rps: float | None = Field(default=None, gt=0, le=1_000_000,
                                     description="Requests per second one replica should take.")
    target_cpu: float | None = Field(default=None, gt=0, le=1000,
                                     description="CPU percent (of one CPU) per replica.")
    cooldown_seconds: int = Field(default=DEFAULT_COOLDOWN_SECONDS, ge=10, le=86400,
                                  description="Wait after a change before scaling in.")
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target_within_bounds(self) -> AutoscaleSet:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is more than max ({self.max}); "
                             "use a min at most max")
        if (self.target_rps is None) == (self.target_cpu is None):
            raise ValueError("give exactly one target: target_rps (requests per second per "
                             "replica) or target_cpu (CPU percent per replica)")
        return self


class AutoscalePublic(Output):
    project: str
    service: str
    min: int
    max: int
    target_rps: float | None
    target_cpu: float | None
    cooldown_seconds: int
    enabled: bool
    set_by: str | None = Field(description="The member the autoscaler acts as (their email).")
    last_scaled_at: datetime | None


class DecisionPublic(Output):
    at: datetime
    from_replicas: int
    to_replicas: int
    reason: str
    outcome: str
    deployment_id: str | None
