"""`GET /infra/deployments/{id}/variables`: the variables a deployment runs with, what a
rollback to it brings back (the dashboard's rollback dialog shows them). A value is shown only
while the service has it as a variable that is not secret; the rest are masked."""

from __future__ import annotations

from typing import Any

from dockyard.models.enums import Role
from tests.api.test_deploys import DEPLOY, IMAGE_BODY, add_server, closed_port

ENV = "/api/v1/projects/shop/services/web/env"


async def deployed_with(client: Any, shop: Any, platform: Any) -> str:
    """A deployment of web made with DEBUG=1 and the secret TOKEN (it fails: no agent)."""
    await add_server(platform, shop, closed_port())
    answer = await client.patch(ENV, headers=shop.headers, json={"set": [
        {"key": "DEBUG", "value": "1"}, {"key": "TOKEN", "value": "s3cret", "secret": True}]})
    assert answer.status_code == 200, answer.text
    answer = await client.post(DEPLOY, json=IMAGE_BODY, headers=shop.headers)
    assert answer.status_code == 200, answer.text
    deployment_id: str = answer.headers["X-Deployment-ID"]
    return deployment_id


def variables(deployment_id: str) -> str:
    return f"/api/v1/infra/deployments/{deployment_id}/variables"


async def test_a_deployments_variables_are_listed_with_secrets_masked(
        client, shop, platform, member_of):
    deployment_id = await deployed_with(client, shop, platform)
    viewer = await member_of(Role.VIEWER)
    answer = await client.get(variables(deployment_id[:8]), headers=viewer.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {"key": "DEBUG", "value": "1", "secret": False, "source": "user"},
        {"key": "TOKEN", "value": "********", "secret": True, "source": "user"}]


async def test_a_value_no_longer_a_plain_variable_of_the_service_is_masked(
        client, shop, platform, stranger):
    deployment_id = await deployed_with(client, shop, platform)
    answer = await client.patch(ENV, headers=shop.headers, json={"unset": ["DEBUG"]})
    assert answer.status_code == 200, answer.text
    listed = (await client.get(variables(deployment_id), headers=shop.headers)).json()
    assert [(v["key"], v["value"]) for v in listed] == [("DEBUG", "********"),
                                                        ("TOKEN", "********")]
    assert (await client.get(variables(deployment_id), headers=stranger.headers)
            ).status_code == 404
