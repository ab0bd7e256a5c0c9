"""Fixtures of the API tests."""

import pytest

P = "/api/v1/projects"

@pytest.fixture
async def shop(client, owner):
    """The owner, with project shop and its service web."""
    for path, body in ((P, {"name": "shop"}), (f"{P}/shop/services", {"name": "web"})):
        answer = await client.post(path, json=body, headers=owner.headers)
        assert answer.status_code == 201, answer.text
    return owner
