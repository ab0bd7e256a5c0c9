"""What the pre-receive hook needs to deploy a push, handed to it in the CGI's environment
(never on disk: the token is the pusher's own credential)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

PREFIX = "DOCKYARD_GIT_"


@dataclass(frozen=True)
class PushContext:
    """The API the push came in on, the pusher's token and workspace, the service pushed to
    and the one branch it deploys."""

    api_url: str
    token: str
    workspace_id: str
    project: str
    service: str
    branch: str

    def env(self) -> dict[str, str]:
        return {f"{PREFIX}{f.name.upper()}": getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PushContext:
        """The context the API put in the hook's environment; KeyError when run by hand."""
        return cls(**{f.name: environ[f"{PREFIX}{f.name.upper()}"] for f in fields(cls)})
