"""Records of agent upgrades: the bundle a control plane serves, what an agent answers when it
takes one, and the events of an upgrade as the control plane streams them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from dockyard.models.fields import Name, Whole

SHA256 = r"[0-9a-f]{64}"
AGENT_VERSION = r"[0-9A-Za-z][0-9A-Za-z._-]{0,27}\+[0-9a-f]{10}"

Sha256 = Annotated[str, Whole(SHA256, "use the 64 lowercase hex digits of a SHA-256 digest")]
AgentVersion = Annotated[str, Field(max_length=40), Whole(
    AGENT_VERSION, "use an agent version like '0.1.0+0123456789' (a version, '+', and the "
                   "first 10 hex digits of its code's digest)")]


class BundleInfo(BaseModel):
    """The agent bundle this control plane serves at /api/v1/agent/bundle/{sha256}."""

    version: str
    sha256: str
    size: int


class UpgradeAccepted(BaseModel):
    """An agent's answer to an upgrade: it switched to `version` and restarts after answering."""

    version: str
    previous: str | None


# "One by name, or all": the rule below, said in the JSON schema too.
_ONE_OR_ALL: JsonDict = {"oneOf": [
    {"required": ["server"], "properties": {"server": {"type": "string"}, "all": {"const": False}}},
    {"required": ["all"], "properties": {"all": {"const": True}, "server": {"type": "null"}}}]}


class UpgradeRequest(BaseModel):
    """Which servers to upgrade: one by name, or all of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_OR_ALL)

    server: Name | None = None
    all: bool = False

    @model_validator(mode="after")
    def one_or_all(self) -> UpgradeRequest:
        if (self.server is None) == (not self.all):
            raise ValueError("name one server, or set all (not both)")
        return self


class UpgradeStep(StrEnum):
    SKIPPED = "skipped"
    UPLOADING = "uploading"
    RESTARTING = "restarting"
    UPGRADED = "upgraded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    REFUSED = "refused"
    DONE = "done"


class UpgradeEvent(BaseModel):
    """One step of `dockyard servers upgrade`, as it happens."""

    step: UpgradeStep
    server: str | None = None
    version: str | None = Field(default=None, description="The version upgraded to.")
    message: str = ""

    def sse(self) -> bytes:
        return f"event: {self.step.value}\ndata: {self.model_dump_json()}\n\n".encode()
