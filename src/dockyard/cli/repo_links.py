"""`dockyard git link|unlink|show|deliveries` (being written)."""

from __future__ import annotations

import typer


def register(git: typer.Typer) -> None:
    """Add the repository-link commands to the `git` group."""
