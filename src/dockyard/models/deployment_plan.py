"""A deployment as the control plane hands it to the engine, and the only code that reads or
writes the JSON columns of `deployments` (`source`, `config`, `phase`, `progress`).

The plan says what is deployed (its source), with which parameters, where (servers) and under
which site and host names; `Phase` orders the engine's phases; `Progress` records each server's
step and the process that owns the deployment. The column shapes are those written since the
first release, so stored deployments load unchanged."""

from __future__ import annotations

import os
import secrets
import socket
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from dockyard.models.deploys import Effective, Source
from dockyard.models.enums import ServiceKind, SourceKind
from dockyard.models.tables import Deployment


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class FromArchive(_Record):
    """An uploaded archive, unpacked on the control plane at `path`."""

    kind: Literal["archive"] = "archive"
    path: str
    bytes: int = 0
    commit: str | None = None  # the pushed commit whose tree this is (`git push`)
    ref: str | None = None  # the branch it was pushed to


class FromGit(_Record):
    """A git ref, or exactly `commit` (a webhook's, fetched from `ref`). `link_id`: the
    repository link whose credential the fetch uses; the credential itself is never here."""

    kind: Literal["git"] = "git"
    url: str
    ref: str | None = None
    commit: str | None = None
    link_id: str | None = None


class FromImage(_Record):
    kind: Literal["image"] = "image"
    image: str


class FromRelease(_Record):
    """A retained release again: a rollback, or the live one with today's variables. `release`
    is the release's id once the plan is made (a requested id prefix before)."""

    kind: Literal["release", "rollback"] = "release"
    release: str | None = None


Origin = Annotated[FromArchive | FromGit | FromImage | FromRelease, Field(discriminator="kind")]
_ORIGIN: TypeAdapter[Origin] = TypeAdapter(Origin)


def origin_of(requested: Source) -> Origin:
    """The plan's source for a deploy request's source."""
    return _ORIGIN.validate_python(requested.model_dump(exclude_none=True))


class Processes(_Record):
    """A release's process types besides `web` (whose command is the image's, or the
    service's `command`), and its `release` command: from the app's Procfile at build time."""

    commands: dict[str, list[str]] = Field(default_factory=dict)
    release: list[str] | None = None

    def types(self) -> list[str]:
        return ["web", *sorted(self.commands)]


class ReleaseLink(_Record):
    """A stateful service of the project as a release linked it: the variable, and where the
    service ran. No secret: the URL (with its password) is only in the release's encrypted
    variables. `given_by` is who gave the variable instead ("you", or another service)."""

    service: str
    kind: ServiceKind
    variable: str
    hostname: str
    server_id: str
    server_ip: str
    given_by: str | None = None

    @property
    def injected(self) -> bool:
        return self.given_by is None


class DeploymentPlan(_Record):
    source: Origin
    image: str = Field(description="The release's image reference (registry/...:deploy_ID).")
    params: Effective
    servers: list[str] = Field(description="The target servers' ids, in rollout order.")
    site: str
    hosts: list[str]
    processes: Processes = Field(default_factory=Processes)
    only: str | None = Field(default=None, description=(
        "Replace only this process type's containers (a restart of one type)."))
    run_release: bool = Field(default=True, description=(
        "Run the release command; restarts and scaling do not."))
    links: list[ReleaseLink] = Field(default_factory=list, description=(
        "The project's stateful services this release was given (injected by name)."))

    @property
    def overridden_links(self) -> list[ReleaseLink]:
        """The links whose variable the app got from elsewhere (its own, another service)."""
        return [link for link in self.links if not link.injected]

    @property
    def source_kind(self) -> SourceKind:
        return SourceKind(self.source.kind)

    def source_column(self) -> dict[str, Any]:
        return self.source.model_dump(mode="json", exclude={"kind"}, exclude_none=True)

    def public_source(self) -> dict[str, Any]:
        """The source as users see it: not where the control plane keeps an upload."""
        return {k: v for k, v in self.source_column().items() if k != "path"}

    def to_columns(self) -> dict[str, Any]:
        """The values of the `deployments` columns that hold this plan."""
        config = self.model_dump(mode="json", include={"params", "servers", "site", "hosts",
                                                     "processes", "only", "run_release",
                                                     "links"})
        return {"source_kind": self.source_kind, "source": self.source_column(),
                "image_tag": self.image, "config": config}

    @classmethod
    def from_row(cls, row: Deployment) -> DeploymentPlan:
        source = {**row.source, "kind": SourceKind(row.source_kind).value}
        return cls.model_validate({**row.config, "source": source, "image": row.image_tag or ""})


class Phase(StrEnum):
    """Where the engine is. The forward phases are in order; `REVERT` is the way back."""

    START = ""
    FETCH = "fetch"
    PULL = "pull"
    BUILD = "build"
    PUSH = "push"
    RELEASE = "release"
    ROLLOUT = "rollout"
    COMMIT = "commit"
    DONE = "done"
    REVERT = "revert"

    @property
    def past_switch(self) -> bool:
        """Every server serves the new release: from here the deployment only goes forward."""
        return self in _FORWARD and _FORWARD.index(self) >= _FORWARD.index(Phase.COMMIT)


_FORWARD = [phase for phase in Phase if phase is not Phase.REVERT]


class Step(StrEnum):
    """What the engine does on one server."""

    PULL = "pull"
    START = "start"
    HEALTH = "health"
    SWITCH = "switch"
    REVERT = "revert"
    STOP = "stop"


class StepState(StrEnum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"


class ServerStep(_Record):
    step: Step
    state: StepState


class Owner(_Record):
    """The process running a deployment; another process takes over only if it is gone."""

    host: str
    pid: int
    nonce: str

    @classmethod
    def of_this_process(cls) -> Owner:
        return cls(host=socket.gethostname(), pid=os.getpid(), nonce=secrets.token_hex(8))


class Progress(_Record):
    owner: Owner | None = None
    servers: dict[str, ServerStep] = Field(default_factory=dict)

    def with_owner(self, owner: Owner) -> Progress:
        return self.model_copy(update={"owner": owner})

    def with_step(self, server_id: str, step: Step, state: StepState) -> Progress:
        servers = {**self.servers, server_id: ServerStep(step=step, state=state)}
        return self.model_copy(update={"servers": servers})

    def to_column(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_column(cls, value: dict[str, Any]) -> Progress:
        return cls.model_validate(value)
