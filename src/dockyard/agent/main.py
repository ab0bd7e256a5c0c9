"""`dockyard-agent`: the node agent. For now it only tells its version."""

from __future__ import annotations

from dockyard import __version__


def run() -> None:
    print(f"dockyard-agent {__version__}")


if __name__ == "__main__":
    run()
