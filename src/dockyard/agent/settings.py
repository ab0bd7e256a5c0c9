"""The agent's own settings, from `DOCKYARD_AGENT_*` variables. Built by `main`, passed in.

`AgentSettings.from_environment(os.environ)` reads them as pydantic-settings read them (names
in any case; a list as JSON; a bad value is a `ValidationError` naming the field) without
importing it; `AgentSettings(...)` takes the values themselves."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, get_origin

from pydantic import BaseModel, ConfigDict, Field

from dockyard.agent.commands import ContainerLogs
from dockyard.agent.logrotate import Bound
from dockyard.agent.tls import CertificateFiles

MAX_CLOCK_SKEW_SECONDS = 300


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_default=True)
    PREFIX: ClassVar[str] = "DOCKYARD_AGENT_"

    host: str = "127.0.0.1"
    port: int = Field(default=8421, ge=1, le=65535)
    state_dir: Path = Path("/var/lib/dockyard-agent")
    docker_host: str = "unix:///var/run/docker.sock"
    nginx_binary: str = "nginx"
    nginx_http_port: int = Field(default=80, ge=1, le=65535)
    nginx_https_port: int = Field(default=443, ge=1, le=65535)
    max_body_bytes: int = Field(default=1024**2, ge=1024)
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    tls: bool = True
    signature_max_age_seconds: int = Field(default=MAX_CLOCK_SKEW_SECONDS, ge=1)
    log_level: str = "INFO"
    log_json: bool | None = None
    # The bound of the on-disk buffer of container logs awaiting the control plane.
    log_buffer_bytes: int = Field(default=64 * 1024**2, ge=64 * 1024)
    # How often the supervisor checks that both nginx layers run (0: it does not run), and
    # the longest pause between restarts of a layer that keeps dying.
    supervise_seconds: float = Field(default=1.0, ge=0)
    supervise_max_backoff_seconds: float = Field(default=30.0, ge=1)
    # The agent's home when it was installed from a bundle (release.AGENT_HOME: its venv,
    # releases/, current and previous); None when a package manager or a source tree installed
    # it, and then it does not upgrade itself.
    releases_dir: Path | None = None
    # How long an upgrade's self-test of the new release may take, and how long the watchdog
    # waits for the restarted agent to answer with the new version before it rolls back.
    upgrade_selftest_seconds: float = Field(default=60.0, ge=1)
    upgrade_watchdog_seconds: float = Field(default=60.0, ge=1)
    # Containers may not reach the cloud's metadata service (its user-data holds this
    # agent's keys): on for provisioned servers, off for adopted and local nodes.
    block_metadata: bool = False
    # The node's log files (the edge's request log, both nginx layers' error logs, and the
    # files named in `log_files`): each rotated past `log_max_bytes` or `log_max_age_hours`,
    # `log_keep` rotated ones kept (see `dockyard.agent.logrotate`); checked every
    # `log_rotate_seconds` (the request log every second, by its reader).
    log_max_bytes: int = Field(default=16 * 1024**2, ge=1024)
    log_keep: int = Field(default=2, ge=1, le=100)
    log_max_age_hours: float = Field(default=168.0, gt=0)
    log_rotate_seconds: float = Field(default=10.0, gt=0)
    # Files other processes append to (their standard output) that the agent keeps bounded
    # by copying and truncating them: the agent's own log, dockerd's, when they are files.
    log_files: list[Path] = Field(default_factory=list)
    # Every container the agent starts keeps at most this much Docker log (json-file:
    # `container_log_keep` files of `container_log_max_bytes`).
    container_log_max_bytes: int = Field(default=10 * 1024**2, ge=1024)
    container_log_keep: int = Field(default=3, ge=1, le=100)
    # The disk guard (`dockyard.agent.disk_guard`): every `disk_check_seconds` (0: never by
    # itself) the fullest file system the agent writes to is read; at `disk_cleanup_fraction`
    # used, stopped containers, all but the newest `disk_cleanup_keep_releases` release images
    # of each app, dangling images and week-old build cache are removed at once, then not
    # again by itself within `disk_cleanup_pause_seconds`.
    disk_check_seconds: float = Field(default=60.0, ge=0)
    disk_cleanup_fraction: float = Field(default=0.85, gt=0, le=1)
    disk_cleanup_pause_seconds: float = Field(default=600.0, ge=0)
    disk_cleanup_keep_releases: int = Field(default=3, ge=1, le=100)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **values: Any) -> AgentSettings:
        """The settings named in `environ`; `values` win over it."""
        named = {name.upper(): value for name, value in environ.items()}
        found = {field: _decoded(field, named[cls.PREFIX + field.upper()])
                 for field in cls.model_fields if cls.PREFIX + field.upper() in named}
        return cls(**{**found, **values})

    @classmethod
    def variables(cls) -> frozenset[str]:
        """The environment variables these settings are read from."""
        return frozenset(cls.PREFIX + field.upper() for field in cls.model_fields)

    @property
    def log_bound(self) -> Bound:
        return Bound(self.log_max_bytes, self.log_keep, self.log_max_age_hours * 3600)

    @property
    def container_logs(self) -> ContainerLogs:
        return ContainerLogs(self.container_log_max_bytes, self.container_log_keep)

    @property
    def key_file(self) -> Path:
        return self.state_dir / "agent.key"

    @property
    def certificate_files(self) -> CertificateFiles:
        return CertificateFiles(self.state_dir)

    @property
    def nonce_file(self) -> Path:
        return self.state_dir / "nonces.log"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "desired-state.json"

    @property
    def nginx_dir(self) -> Path:
        return self.state_dir / "nginx"

    @property
    def sites_dir(self) -> Path:
        return self.nginx_dir / "sites"

    @property
    def certs_dir(self) -> Path:
        return self.state_dir / "certs"


def _decoded(field: str, value: str) -> Any:
    """A list is given as JSON; anything else as the text itself."""
    if get_origin(AgentSettings.model_fields[field].annotation) is not list:
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f'error parsing value for field "{field}" from source '
                         '"EnvSettingsSource"') from exc
