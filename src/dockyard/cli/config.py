"""The CLI's saved login: API URL and token in the user's config directory, mode 0600."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from platformdirs import user_config_dir


def config_path() -> Path:
    return Path(user_config_dir("dockyard", appauthor=False)) / "config.json"


@dataclass
class CliConfig:
    url: str | None = None
    token: str | None = None
    workspace: str | None = None

    @classmethod
    def load(cls) -> CliConfig:
        """The saved login, overridden by DOCKYARD_URL / DOCKYARD_TOKEN when set."""
        path = config_path()
        saved = json.loads(path.read_text()) if path.exists() else {}
        config = cls(**{k: saved.get(k) for k in ("url", "token", "workspace")})
        config.url = os.environ.get("DOCKYARD_URL") or config.url
        config.token = os.environ.get("DOCKYARD_TOKEN") or config.token
        return config

    def save(self) -> Path:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle, indent=2)
        os.chmod(temporary, 0o600)
        temporary.replace(path)
        return path
