"""The control plane's own log files kept bounded, as the agent keeps the node's: the API,
worker and relay write their standard output into DATA_DIR/logs (opened for appending),
so each file is copied and truncated (see `dockyard.agent.logrotate`)."""

from __future__ import annotations

from pathlib import Path

from dockyard.agent.logrotate import Bound, LogRotator, Watched
from dockyard.kernel.settings import Settings

DAEMONS = ("api", "worker", "relay")  # the names of `dockyard.cli.daemons.ALL`


def log_file(settings: Settings, daemon: str) -> Path:
    return settings.data_dir / "logs" / f"{daemon}.log"


def rotator(settings: Settings) -> LogRotator:
    bound = Bound(settings.log_file_max_bytes, settings.log_file_keep,
                  settings.log_file_max_age_hours * 3600)
    files = [Watched(log_file(settings, daemon)) for daemon in DAEMONS]
    return LogRotator(files, bound, settings.log_file_rotate_seconds)
