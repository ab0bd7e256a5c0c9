"""The in-process deploy fixtures (three real agent apps with real nginx and fake Docker)."""

from tests.deploy.conftest import make_runner, nodes, shop

__all__ = ["make_runner", "nodes", "shop"]
