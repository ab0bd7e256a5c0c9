# ruff: noqa: F811 - the deploy fixtures (nodes, shop, make_runner) are imported by name
"""A deleted service's git repository goes with it (the disk does not keep every pushed
tree of every service ever deleted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.core.platform import Platform
from dockyard.gitpush import repos
from tests.api.test_git_push import Served, git, new_token, served, work_tree
from tests.deploy.conftest import AgentNode, make_runner, nodes, shop  # noqa: F401

__all__ = ["served"]


async def test_deleting_a_pushed_service_removes_its_repository(
        served: Served, shop: Any, nodes: dict[str, AgentNode], platform: Platform,
        tmp_path: Path) -> None:
    token = await new_token(served.http, shop.headers)
    tree, _ = await work_tree(tmp_path)
    code, out = await git(tree, "push", served.remote(token), "main")
    assert code == 0, out
    [repository] = list(repos.repo_root(platform.settings.data_dir).glob("*.git"))
    assert (repository / "HEAD").is_file()
    answer = await served.http.delete("/api/v1/projects/shop/services/web",
                                      headers=shop.headers)
    assert answer.status_code in (200, 204), answer.text
    assert not repository.exists()
