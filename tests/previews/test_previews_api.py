"""The previews API: a project's preview limit (read in ProjectPublic, set in ProjectUpdate,
0..50 refused at the edge) and its previews list."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

P = "/api/v1/projects"


@pytest.fixture
async def project(client: httpx.AsyncClient, owner: Any) -> Any:
    answer = await client.post(P, json={"name": "shop"}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["preview_limit"] == 3
    return owner


async def test_the_preview_limit_is_set_within_0_to_50(client: httpx.AsyncClient,
                                                       project: Any) -> None:
    for limit in (0, 50):
        answer = await client.patch(f"{P}/shop", json={"preview_limit": limit},
                                    headers=project.headers)
        assert (answer.status_code, answer.json()["preview_limit"]) == (200, limit)
    for wrong in (-1, 51, "many"):
        answer = await client.patch(f"{P}/shop", json={"preview_limit": wrong},
                                    headers=project.headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][-1] == "preview_limit"
    assert (await client.get(f"{P}/shop", headers=project.headers)).json()[
        "preview_limit"] == 50


async def test_previews_are_listed_per_project(client: httpx.AsyncClient, project: Any,
                                               stranger: Any) -> None:
    answer = await client.get(f"{P}/shop/previews", headers=project.headers)
    assert (answer.status_code, answer.json()) == (200, [])
    assert (await client.get(f"{P}/shop/previews", headers=stranger.headers)
            ).status_code == 404
    assert (await client.get(f"{P}/Shop!/previews", headers=project.headers)
            ).status_code == 422
