"""The in-process deploy fixtures (three real agent apps with real nginx and fake Docker), a
git repository with a pull request's branch, and the apps' domain as a Cloudflare zone."""

from tests.deploy.conftest import make_runner, nodes, shop
from tests.previews.test_previews import repo, zoned

__all__ = ["make_runner", "nodes", "repo", "shop", "zoned"]
