"""`dockyard servers upgrade [NAME|--all]`: agents replaced in place."""

from __future__ import annotations

import typer


def register(servers: typer.Typer) -> None:
    """Add `upgrade` to the `servers` group."""
