"""CLI tests run the real `dockyard` commands against real processes."""

from tests.live import live

__all__ = ["live"]
