"""The one settings object. Built by entry points and passed in; never read at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dockyard.models.fields import Whole
from dockyard.providers.digitalocean import ENDPOINT


def _default_data_dir() -> Path:
    return Path(user_data_dir("dockyard", appauthor=False))


class Settings(BaseSettings):
    """Everything configurable, from `DOCKYARD_*` variables plus `DATABASE_URL` / `REDIS_URL`."""

    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "DOCKYARD_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "DOCKYARD_REDIS_URL")
    )
    secret_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8420, ge=1, le=65535)
    public_url: str | None = None
    jwt_lifetime_minutes: int = Field(default=480, ge=1, le=60 * 24 * 30)
    # How long a process trusts a credential it resolved; another process's revocation
    # reaches it within this delay (its own, at once). 0 resolves every request.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    invitation_lifetime_days: int = Field(default=7, ge=1, le=90)
    login_limit_per_client: int = Field(default=30, ge=1)
    login_limit_per_account: int = Field(default=10, ge=1)
    login_limit_window_seconds: int = Field(default=60, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Forges' webhook deliveries: per client address, and the largest body (GitHub's is 25 MB).
    hook_rate_per_minute: int = Field(default=600, ge=1)
    max_hook_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    env_value_max_bytes: int = Field(default=32 * 1024, ge=1)
    db_busy_timeout_ms: int = Field(default=15_000, ge=10_000)
    password_time_cost: int = Field(default=2, ge=1, le=10)
    password_memory_kib: int = Field(default=19_456, ge=8, le=1024 * 1024)
    agent_poll_seconds: float = Field(default=30.0, ge=0)
    local_agent_port: int = Field(default=8421, ge=1, le=65535)
    local_http_port: int = Field(default=80, ge=1, le=65535)
    local_https_port: int = Field(default=443, ge=1, le=65535)
    log_level: str = "INFO"
    log_json: bool | None = None
    # The control plane's own log files (DATA_DIR/logs/api.log, worker.log, relay.log): each
    # copied and truncated past `log_file_max_bytes` or `log_file_max_age_hours`, with
    # `log_file_keep` rotated ones kept; checked every `log_file_rotate_seconds` by the API
    # process that runs the background loops.
    log_file_max_bytes: int = Field(default=16 * 1024**2, ge=1024)
    log_file_keep: int = Field(default=2, ge=1, le=100)
    log_file_max_age_hours: float = Field(default=168.0, gt=0)
    log_file_rotate_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Socket peers (addresses or CIDRs) whose client-IP headers are believed.
    trusted_proxies: list[str] = Field(default_factory=list)
    request_metrics: bool = True
    # API processes `dockyard serve` runs (the background loops run in one of them), and
    # whether uvicorn logs each request (request metrics record every request anyway).
    api_workers: int = Field(default=1, ge=1, le=64)
    access_log: bool = False
    # Where the job worker runs: a process of its own (`dockyard up` starts it), or inside
    # the API process that runs the background loops (one process less to hold in memory).
    worker: Literal["process", "embedded"] = "process"
    request_metrics_batch: int = Field(default=100, ge=1, le=10_000)
    # Deploys: where images go, how big an upload may be, and the default host of an app.
    registry: Annotated[str, Whole(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?",
                                   "use host[:port], like '127.0.0.1:5000'")] = "127.0.0.1:5000"
    max_archive_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    # The dashboard's built files (default: inside the package, where scripts/up builds them).
    dashboard_dir: Path | None = None
    apps_domain: Annotated[str, Whole(r"[a-z0-9.-]{1,200}",
                                      "use a lowercase domain, like 'apps.example.com'")] = (
        "localhost")
    keep_releases: int = Field(default=5, ge=1, le=100)
    base_image: str | None = None
    # Limits of an image build on its server, so a heavy build cannot starve the apps there.
    build_memory_mb: int = Field(default=2048, ge=64)
    build_cpus: int = Field(default=2, ge=1, le=1024)
    build_timeout_seconds: float = Field(default=1800, gt=0)
    # The longest a one-off `dockyard run` may take before its container is killed.
    run_timeout_seconds: int = Field(default=3600, ge=1, le=86400)
    # How long a deployment waits for a node agent that does not answer (restarting, being
    # upgraded) before the step fails; 0: not at all.
    agent_wait_seconds: float = Field(default=60, ge=0, le=3600)
    # The longest a Procfile's `release:` command may run before the deployment fails.
    release_timeout_seconds: int = Field(default=900, ge=1, le=86400)
    # Whether deployers may build git repositories on the control plane's own disk.
    git_allow_local: bool = False
    # Container logs: kept this many days, and at most this many bytes per service (its
    # oldest lines go first); enforced by the worker's `logs.prune` job every 10 minutes.
    log_retention_days: float = Field(default=7, gt=0)
    log_max_bytes_per_service: int = Field(default=64 * 1024**2, ge=1024)
    # Database retention, enforced by the worker's `retention.prune` job every hour in
    # batches of `retention_batch` rows, each batch its own short transaction: a row older
    # than its table's days, or beyond its newest max rows, goes. The events of running
    # deployments and of releases that can still be rolled back are kept whatever their age.
    retention_batch: int = Field(default=200, ge=1, le=100_000)
    deployment_events_days: float = Field(default=30, gt=0)
    deployment_events_max_rows: int = Field(default=500_000, ge=1)
    audit_days: float = Field(default=365, gt=0)
    audit_max_rows: int = Field(default=2_000_000, ge=1)
    request_metrics_days: float = Field(default=14, gt=0)
    request_metrics_max_rows: int = Field(default=1_000_000, ge=1)
    # Server events, autoscale decisions and webhook deliveries (never a queued one); alert
    # deliveries, and resolved alerts (theirs go with them); finished outbox jobs; dead ones
    # (counted from their death: long enough for a person to look; with Redis, each queue's
    # dead-letter stream keeps its newest dead_jobs_max_rows); sessions, from their expiry.
    other_events_days: float = Field(default=90, gt=0)
    other_events_max_rows: int = Field(default=100_000, ge=1)
    alert_deliveries_days: float = Field(default=30, gt=0)
    alert_deliveries_max_rows: int = Field(default=100_000, ge=1)
    finished_jobs_days: float = Field(default=1, gt=0)
    finished_jobs_max_rows: int = Field(default=100_000, ge=1)
    dead_jobs_days: float = Field(default=30, gt=0)
    dead_jobs_max_rows: int = Field(default=10_000, ge=1)
    expired_sessions_days: float = Field(default=30, gt=0)
    # Images: the worker's `images.prune` job (every 6 hours) has each server's agent remove
    # dangling images and Docker's build cache unused for `build_cache_days` (BuildKit's cache
    # also down to `build_cache_keep_bytes`); layers of kept releases stay, so a code-only
    # change still reuses the dependency layer. It then deletes from the registry the release
    # images no service keeps and garbage-collects the registry whose config is
    # `registry_config` (default: the one Dockyard runs, data_dir/registry), holding
    # data_dir/registry.lock exclusively: deploys push holding it shared, so never during one.
    build_cache_days: float = Field(default=7, ge=0, le=3650)
    build_cache_keep_bytes: int = Field(default=2 * 1024**3, ge=0)
    registry_config: Path | None = None
    # The reconciler (the worker's `servers.reconcile` job): how often each server is
    # compared with what it should run, and how long a stray container is seen before it
    # is removed.
    reconcile_seconds: float = Field(default=30, ge=5, le=3600)
    reconcile_grace_seconds: float = Field(default=120, ge=0, le=86400)
    # Where sealed backups of stateful services are stored: this directory (default
    # <data_dir>/backups), or an S3-compatible bucket when `backups_s3_bucket` is set.
    backups_dir: Path | None = None
    backups_s3_bucket: Annotated[str, Whole(r"(?:[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])?",
                                            "use an S3 bucket name: 3-63 lowercase letters, "
                                            "digits, '.' or '-'")] = ""
    backups_s3_endpoint_url: Annotated[str, Whole(
        r"(?:https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/?)?",
        "use the endpoint as http(s)://host[:port], like 'https://fra1.digitaloceanspaces.com'"
        )] = ""
    backups_s3_region: Annotated[str, Whole(r"[a-z0-9-]{0,40}",
                                            "use a region name like 'us-east-1'")] = ""
    # Domains. ACME: the default directory (Let's Encrypt; any ACME directory URL works),
    # a CA bundle to trust for it (a private ACME server), the account's contact, and how
    # many days before expiry a certificate is renewed. Cloudflare: its API's base URL.
    acme_directory_url: Annotated[str, Whole(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[!-~]*",
                                             "use an https:// ACME directory URL")] = (
        "https://acme-v02.api.letsencrypt.org/directory")
    acme_ca_bundle: Path | None = None
    acme_email: str = ""
    certificate_renew_days: int = Field(default=30, ge=1, le=89)
    cloudflare_api_url: Annotated[str, Whole(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[!-~]*",
                                             "use the API's base URL, like "
                                             "'https://api.cloudflare.com/client/v4'")] = (
        "https://api.cloudflare.com/client/v4")
    # DigitalOcean: its API's base URL, the stock image servers (without a snapshot) and
    # snapshots are built from, how long a droplet may take to be active and its agent to
    # answer (a snapshot build: to finish), how often those are checked, and the first
    # pause before retrying a 429 or 5xx.
    digitalocean_api_url: Annotated[str, Whole(
        r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[!-~]*)?",
        "use the API's base URL, like 'https://api.digitalocean.com'")] = ENDPOINT
    digitalocean_image: Annotated[str, Whole(r"[a-z0-9][a-z0-9-]{0,63}",
                                             "use an image slug like 'debian-12-x64'")] = (
        "debian-12-x64")
    provision_active_seconds: float = Field(default=600, gt=0, le=3600)
    provision_ready_seconds: float = Field(default=900, gt=0, le=7200)
    snapshot_build_seconds: float = Field(default=1800, gt=0, le=7200)
    provision_poll_seconds: float = Field(default=3, gt=0, le=60)
    digitalocean_retry_seconds: float = Field(default=1, ge=0, le=60)
    # How often the traffic watch asks each server whether its copies answer; a copy that
    # does not is taken out of DNS (marked down) after this many seconds at most, twice.
    traffic_check_seconds: float = Field(default=10, ge=1, le=300)
    # How often the autoscaler evaluates each policy (0: off); the traffic it reads is the
    # last `autoscale_window_seconds`.
    autoscale_seconds: float = Field(default=15, ge=0, le=3600)
    autoscale_window_seconds: float = Field(default=60, ge=10, le=3600)
    backups_s3_access_key: str = ""
    backups_s3_secret_key: SecretStr = SecretStr("")
    backups_s3_prefix: Annotated[str, Whole(r"(?:[A-Za-z0-9_.-]+/)*",
                                            "use folders ending in '/', like 'dockyard/'")] = ""
    # Alerts: a lasting alert is sent again every `alert_repeat_minutes`, at most
    # `alert_max_repeats` times; a server's disk alerts past this fraction used (of the
    # fullest file system its agent writes to; critical under the disk floor). Email
    # channels send through this SMTP server (none: email channels cannot be added).
    alert_repeat_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60)
    alert_max_repeats: int = Field(default=24, ge=0, le=1000)
    disk_alert_fraction: float = Field(default=0.85, gt=0, le=1)
    # Disk floor: a build or deploy to a server with less free space than this fraction of
    # a file system it writes to (Docker's data root, the agent's state) or these bytes,
    # the larger, is refused before it starts.
    disk_floor_free_fraction: float = Field(default=0.05, ge=0, lt=1)
    disk_floor_free_bytes: int = Field(default=2_000_000_000, ge=0)
    # A token, when set, guards GET /metrics (Bearer). (A server's disk is cleaned by its
    # agent: see DOCKYARD_AGENT_DISK_CLEANUP_FRACTION in `dockyard.agent.settings`.)
    metrics_token: SecretStr = SecretStr("")
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = ""
    smtp_starttls: bool = True

    @property
    def sqlalchemy_url(self) -> str:
        """The async URL of the database: the configured one, or SQLite in the data dir."""
        if not self.database_url:
            return f"sqlite+dockyard:///{self.data_dir / 'dockyard.db'}"
        return _async_driver(self.database_url)

    @property
    def key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def build_cache_seconds(self) -> int:
        return int(self.build_cache_days * 86400)


def _async_driver(url: str) -> str:
    """Map the conventional URL schemes onto the async drivers Dockyard ships with."""
    for prefix, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+dockyard:///"),
    ):
        if url.startswith(prefix):
            return driver + url[len(prefix) :]
    return url
