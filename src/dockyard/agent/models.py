"""What the agent accepts and answers: validated once here, so nothing hostile goes further."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from dockyard.models.fields import NO_NUL, Name, Whole

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z)(?:{_LABEL}\.)*{_LABEL}")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]{1,5})?/)?"
_RELATIVE_PATH = re.compile(r"[A-Za-z0-9_./-]{1,255}")
WEEK_SECONDS = 7 * 24 * 3600  # what a control plane that does not say gets
MAX_AGE_SECONDS = 10 * 365 * 24 * 3600

ServiceName = Name
ContainerName = Annotated[str, Whole(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}",
                                     "use letters, digits, '_', '.' and '-' (at most 128)")]
Repository = Annotated[str, Field(max_length=255), Whole(
    rf"{_REGISTRY}{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*",
    "use an image repository such as 'registry.example.com:5000/team/app'")]
Tag = Annotated[str, Whole(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
                           "use letters, digits, '_', '.' and '-' (at most 128)")]
EnvKey = Annotated[str, Whole(r"[A-Za-z_][A-Za-z0-9_]{0,254}",
                              "use letters, digits and '_', not starting with a digit")]
LabelKey = Annotated[str, Whole(r"[a-zA-Z0-9][a-zA-Z0-9._/-]{0,254}",
                                "use letters, digits and '._/-'")]
SafePath = Annotated[str, Whole(r"/[A-Za-z0-9._/-]{1,1023}",
                                "use an absolute path of letters, digits and '._/-'")]
ProbePath = Annotated[str, Whole(r"/[A-Za-z0-9._~/?=&%-]{0,1023}",
                                 "use a path starting with '/' of letters, digits and ._~/?=&%-")]
Argument = Annotated[str, Field(max_length=32 * 1024), Whole(
    NO_NUL, "an argument cannot hold a NUL character")]


def _hostname(value: str) -> str:
    if value.startswith("*."):
        raise ValueError("wildcard names such as '*.example.com' are not served (nginx routes "
                         "by the exact name): list each host name")
    if not _HOSTNAME.fullmatch(value):
        raise ValueError("must be a host name: letters, digits, dashes and dots only")
    return value


def _upstream_host(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return _hostname(value)


def _inside_context(value: str) -> str:
    parts = value.split("/")
    if not _RELATIVE_PATH.fullmatch(value) or "" in parts or ".." in parts:
        raise ValueError("must be a relative path inside the build context (letters, digits, "
                         "'_.-/'; no '..', no leading '/')")
    return value


def _host_address(value: str) -> str:
    if value == HOST_GATEWAY:
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"must be an IP address or {HOST_GATEWAY!r}") from exc


def _ipv4_source(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value))
    except ValueError as exc:
        raise ValueError("must be an IPv4 address or network such as 10.0.0.5 or 10.0.0.0/24 "
                         "(no host bits set after the prefix)") from exc


HOST_GATEWAY = "host-gateway"  # Docker's name for the node itself, seen from a container
ServerName = Annotated[str, AfterValidator(_hostname)]
HostAddress = Annotated[str, AfterValidator(_host_address)]
ContextPath = Annotated[str, AfterValidator(_inside_context)]
UpstreamHost = Annotated[str, AfterValidator(_upstream_host)]
FirewallSource = Annotated[str, AfterValidator(_ipv4_source)]  # normalised: 10.0.0.5/32


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageRef(Strict):
    repository: Repository
    tag: Tag = "latest"

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


class Upstream(Strict):
    host: UpstreamHost
    port: int = Field(ge=1, le=65535)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Site(Strict):
    """The desired nginx site of one service on this node. Its names get HTTPS from the
    certificates installed for them (PUT /certificates/{hostname}), not from the site."""

    service: ServiceName
    server_names: list[ServerName] = Field(min_length=1, max_length=100)
    upstreams: list[Upstream] = Field(min_length=1, max_length=100)

    @model_validator(mode="before")
    @classmethod
    def _without_empty_tls(cls, data: object) -> object:
        """Desired states kept by earlier agents hold `"tls": null` (nothing ever set it)."""
        if isinstance(data, dict) and "tls" in data and data["tls"] is None:
            return {key: value for key, value in data.items() if key != "tls"}
        return data


AcmeToken = Annotated[str, Whole(r"[A-Za-z0-9_-]{1,255}",
                                 "use an ACME token: 1-255 base64url characters (A-Z a-z 0-9 _ -)")]
KEY_AUTHORIZATION = r"[A-Za-z0-9_-]{1,255}\.[A-Za-z0-9_-]{1,255}"
Pem = Annotated[str, Field(min_length=1, max_length=64 * 1024), Whole(
    r"[\x20-\x7e\r\n\t]*", "paste the PEM text as it is: printable ASCII and line breaks")]


class CertificateInstall(Strict):
    """A certificate for one host name: the leaf first, then its chain; its unencrypted
    private key. Served by the edge from the next handshake, without any reload."""

    certificate_pem: Pem
    key_pem: Pem
    redirect_https: bool = True
    hsts: bool = False


class InstalledCertificate(BaseModel):
    hostname: str
    sha256: str  # hex of the leaf's DER
    not_after: datetime
    redirect_https: bool
    hsts: bool


class AcmeChallenge(Strict):
    """What the edge answers at /.well-known/acme-challenge/{token}: `token.thumbprint`."""

    key_authorization: Annotated[str, Whole(
        KEY_AUTHORIZATION, "use the key authorization: the token, '.', the account key's "
                           "thumbprint (base64url)")]


class RestartPolicy(StrEnum):
    NO = "no"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"
    ON_FAILURE = "on-failure"


class PortBinding(Strict):
    """`host_port` 0 asks the agent for a free port; it stores the one it chose."""

    container_port: int = Field(ge=1, le=65535)
    host_port: int = Field(ge=0, le=65535)
    host_ip: UpstreamHost = "0.0.0.0"  # noqa: S104 - the node's nginx and peers reach it here
    protocol: Literal["tcp", "udp"] = "tcp"


class HealthCheck(Strict):
    command: list[Argument] = Field(min_length=1, max_length=64)
    interval_seconds: float = Field(default=5, gt=0, le=3600)
    timeout_seconds: float = Field(default=3, gt=0, le=3600)
    retries: int = Field(default=3, ge=1, le=100)
    start_period_seconds: float = Field(default=0, ge=0, le=3600)


class VolumeMount(Strict):
    volume: ContainerName
    target: SafePath


class ContainerSpec(Strict):
    """A container the agent owns; kept in its desired state and restored after a restart."""

    name: ContainerName
    service: ServiceName
    image: ImageRef
    command: list[Argument] | None = Field(default=None, max_length=256)
    env: dict[EnvKey, Argument] = Field(default_factory=dict, max_length=1000)
    labels: dict[LabelKey, Argument] = Field(default_factory=dict, max_length=200)
    ports: list[PortBinding] = Field(default_factory=list, max_length=64)
    restart: RestartPolicy = RestartPolicy.UNLESS_STOPPED
    health: HealthCheck | None = None
    memory_bytes: int | None = Field(default=None, ge=6 * 1024 * 1024)
    cpus: float | None = Field(default=None, gt=0, le=256)
    volumes: list[VolumeMount] = Field(default_factory=list, max_length=64)
    # names the container resolves (/etc/hosts): a stateful service's stable address
    extra_hosts: dict[ServerName, HostAddress] = Field(default_factory=dict, max_length=256)


class FirewallRule(Strict):
    """Who may reach `port`, published on this node: the node's own containers and the
    `allow` sources (published ports are IPv4: 0.0.0.0), nobody else."""

    name: ContainerName
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp"] = "tcp"
    allow: list[FirewallSource] = Field(default_factory=list, max_length=1000)


class StopRequest(Strict):
    grace_seconds: int = Field(default=10, ge=0, le=3600)


class TagRequest(Strict):
    source: ImageRef
    target: ImageRef


class PruneRequest(Strict):
    """Keep the newest `keep` `deploy_*` tags of each repository; or, when `repository` is
    given, exactly its tags in `retain` (the control plane knows which releases are newest:
    identical rebuilds share one image, so image dates cannot tell). Then dangling images
    older than `dangling_max_age_seconds` go (the control plane's build cache age)."""

    keep: int = Field(default=5, ge=1, le=1000)
    repository: Repository | None = None
    retain: list[Tag] = Field(default_factory=list, max_length=1000)
    dangling_max_age_seconds: int = Field(default=WEEK_SECONDS, ge=0, le=MAX_AGE_SECONDS)


class CachePruneRequest(Strict):
    """Dangling images and build cache older than `max_age_seconds`; BuildKit's cache
    also down to `keep_bytes`."""

    max_age_seconds: int = Field(default=WEEK_SECONDS, ge=0, le=MAX_AGE_SECONDS)
    keep_bytes: int = Field(default=2 * 1024**3, ge=0)


class VolumeRequest(Strict):
    name: ContainerName
    service: ServiceName


class ProbeRequest(Strict):
    """One HTTP GET the agent makes on its node, e.g. to a container's published port."""

    port: int = Field(ge=1, le=65535)
    path: ProbePath
    timeout_seconds: float = Field(default=2, gt=0, le=60)
    host: UpstreamHost = "127.0.0.1"


class OneOffRun(Strict):
    """A command in a new container of `image`, removed when it ends or its caller leaves."""

    service: ServiceName
    image: ImageRef
    command: list[Argument] = Field(min_length=1, max_length=256)
    env: dict[EnvKey, Argument] = Field(default_factory=dict, max_length=1000)
    labels: dict[LabelKey, Argument] = Field(default_factory=dict, max_length=200)
    timeout_seconds: int = Field(default=3600, ge=1, le=86400)
    extra_hosts: dict[ServerName, HostAddress] = Field(default_factory=dict, max_length=256)


class KeyRotation(Strict):
    sealed_key: str = Field(min_length=1, max_length=1024)


class AgentInfo(BaseModel):
    agent_version: str
    docker_version: str
    cpus: int
    memory_bytes: int
    disk_free_bytes: int
    load: tuple[float, float, float]
    uptime_seconds: float


class PublishedPort(BaseModel):
    container_port: int
    host_port: int
    host_ip: str


class ContainerSummary(BaseModel):
    id: str
    name: str
    image: str
    state: str
    status: str
    labels: dict[str, str]
    ports: list[PublishedPort] = Field(default_factory=list)


class ProcessState(BaseModel):
    """One container of a service as Docker sees it: its state, restarts, last exit, memory."""

    name: str
    labels: dict[str, str]
    state: str
    started_at: str | None
    finished_at: str | None
    restart_count: int
    exit_code: int | None
    oom_killed: bool
    memory_bytes: int | None


class ContainerHealth(BaseModel):
    name: str
    state: str
    health: str | None
    failing_streak: int


class ImageSummary(BaseModel):
    id: str
    tags: list[str]
    created: int
    size: int


class PruneResult(BaseModel):
    removed: list[str]
    failed: dict[str, str]


class CachePruneResult(BaseModel):
    images_removed: int
    bytes_reclaimed: int


class ProbeResult(BaseModel):
    """`ok` for a 2xx or 3xx answer; a connection failure is a result, never an error."""

    ok: bool
    status: int | None
    error: str | None
    elapsed_ms: float


SupervisionAction = Literal["restarted", "restart failed"]


class SupervisionEvent(BaseModel):
    """Something the agent's supervisor did: a layer found dead and restarted, or not."""

    time: datetime
    process: str
    action: SupervisionAction
    detail: str


class SiteHealth(BaseModel):
    """A request through the edge to one live site, as its visitors would make it."""

    service: str
    status: int | None
    error: str | None


class NodeHealth(BaseModel):
    """The data path as seen from the node: `problems` is empty when it serves."""

    problems: list[str]
    sites: list[SiteHealth]
    events: list[SupervisionEvent]
