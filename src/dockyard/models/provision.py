"""What the provisioning API takes and answers: servers and snapshots on DigitalOcean."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from dockyard.models.fields import Name, Whole
from dockyard.models.schemas import Output

Slug = Annotated[str, Field(min_length=1, max_length=64), Whole(
    r"[a-z0-9][a-z0-9-]{0,63}", "use a slug of lowercase letters, digits and '-', like 'fra1' "
                                "or 's-1vcpu-1gb'")]
ProviderId = Annotated[str, Whole(r"[0-9]{1,18}", "use DigitalOcean's numeric id")]
VpcId = Annotated[str, Whole(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "use a VPC id: a lowercase UUID like '5a4981aa-9653-4bd1-bef5-d6bff52042e4'")]
SshKey = Annotated[str, Whole(
    r"[0-9]{1,18}|(?:[0-9a-f]{2}:){15}[0-9a-f]{2}",
    "use an SSH key's id or its MD5 fingerprint (like '3b:16:bf:...:45:fa')")]
NamePrefix = Annotated[Name, Field(max_length=56, description=(
    "Server names are this, a dash and 6 random hex digits"))]
EventKind = Literal["creating", "created", "active", "ready", "built", "snapshotting",
                    "snapshot", "destroyed", "failed", "done"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProvisionRequest(_Input):
    region: Slug
    size: Slug
    count: int = Field(default=1, ge=1, le=10)
    snapshot: ProviderId | None = Field(default=None, description=(
        "A Dockyard snapshot's DigitalOcean id (`dockyard snapshots list`); none: a stock "
        "image, slower"))
    vpc: VpcId | None = None
    ssh_keys: list[SshKey] = Field(default_factory=list, max_length=20)
    name: NamePrefix = "node"
    credential: Name = "digitalocean"


class SnapshotCreate(_Input):
    region: Slug
    size: Slug = "s-1vcpu-1gb"
    image: Slug | None = Field(default=None, description=(
        "The stock image to build on (default: the snapshot_image setting, debian-12-x64)"))
    credential: Name = "digitalocean"


class ProvisionEvent(BaseModel):
    """One step of provisioning or of a snapshot build, as a Server-Sent Event."""

    kind: EventKind
    message: str
    server: str = ""
    server_id: str = ""
    droplet_id: int | None = None
    ip: str = ""
    agent_version: str = ""
    snapshot_id: str = ""
    ready: int = 0
    failed: int = 0

    def sse(self) -> bytes:
        return f"event: {self.kind}\ndata: {self.model_dump_json()}\n\n".encode()


class SizePublic(BaseModel):
    slug: str
    memory: int = Field(description="MiB")
    vcpus: int
    disk: int = Field(description="GB")
    price_monthly: float = Field(description="US dollars")
    price_hourly: float
    regions: list[str]


class RegionPublic(BaseModel):
    slug: str
    name: str
    available: bool
    sizes: list[str]


class SnapshotPublic(Output):
    id: str
    provider_id: str
    name: str
    regions: list[str]
    agent_version: str
    requirements_digest: str
    cloud_init_version: int
    created_at: datetime
    current: bool = Field(default=False, description=(
        "It carries the agent version the control plane expects"))


class DropletPublic(BaseModel):
    id: int
    name: str
    status: str
    ip: str | None
    region: str
    size: str
    tags: list[str]
    server: str | None = Field(description="Its server in the inventory, if any")
