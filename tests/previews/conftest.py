"""The in-process deploy fixtures (three real agent apps with real nginx and fake Docker), a
git repository with a pull request's branch, the apps' domain as a Cloudflare zone served by
the fake Cloudflare, the API over a module's `runner`, and the private git server."""

from tests.api.test_hooks import git_server
from tests.api.test_stateful import api
from tests.deploy.conftest import make_runner, nodes, shop
from tests.previews.test_previews import cloudflare, repo, zoned

__all__ = ["api", "cloudflare", "git_server", "make_runner", "nodes", "repo", "shop", "zoned"]
