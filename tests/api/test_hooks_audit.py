"""Webhook deliveries and the audit trail: the deliveries table is the forge's log, so a
delivery leaves no history row of its own; one that deploys leaves the deployment's start and
outcome, as the member who linked the repository (the deployment's source names the link).
Ignored deliveries and redeliveries leave nothing."""

from __future__ import annotations

from dockyard.core import agents
from tests import sqlite_only
from tests.api.test_hooks import follow, git_server, linked, pushes, send
from tests.retention.test_system_audit import history_since, last_history_id

database_url = sqlite_only.database_url  # the history rows are written alike on both
__all__ = ["git_server", "linked"]  # fixtures of these tests too


async def test_only_a_delivery_that_deploys_leaves_history_its_deployments(
        client, shop, platform, git_server, linked):
    await agents.secret_for(platform, shop.workspace_id)  # made once, on first use
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    url, secret = git_server.url_of("shop"), linked["secret"]
    before = await last_history_id(platform)
    for sent in (pushes(url, secret, sha, "refs/heads/dev")[0], pushes(url, secret, sha)[1]):
        answer = await send(client, sent)
        assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert result["outcome"] == "deployed"
    await follow(client, shop.headers, result["deployment_id"])
    [again] = (await send(client, sent)).json()["results"]
    assert again["outcome"] == "duplicate"
    assert await history_since(platform, before) == [
        ("create", "deployments", shop.user_id), ("update", "deployments", shop.user_id)]
