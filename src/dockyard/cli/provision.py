"""`dockyard servers provision|sizes|regions|destroy` and `dockyard snapshots ...`."""

from __future__ import annotations

import typer


def register(servers: typer.Typer, app: typer.Typer) -> None:
    """Add these commands to the `servers` group and the `snapshots` group to the app."""
