"""Every resource endpoint: another workspace's object is 404, a role that may not act is 403."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from dockyard.core.servers import register_server
from dockyard.models.enums import Role

ROLES = [Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER]
SVC = "/api/v1/projects/shop/services/web"


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    least_role: Role
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


CASES = [
    Case("GET", "/api/v1/projects/shop", Role.VIEWER),
    Case("PATCH", "/api/v1/projects/shop", Role.MEMBER, {"description": "changed"}),
    Case("DELETE", "/api/v1/projects/shop", Role.ADMIN),
    Case("GET", "/api/v1/projects/shop/services", Role.VIEWER),
    Case("POST", "/api/v1/projects/shop/services", Role.MEMBER, {"name": "worker"}),
    Case("GET", SVC, Role.VIEWER),
    Case("PATCH", SVC, Role.MEMBER, {"image": "nginx:1.27"}),
    Case("DELETE", SVC, Role.ADMIN),
    Case("GET", f"{SVC}/env", Role.VIEWER),
    Case("PATCH", f"{SVC}/env", Role.MEMBER, {"set": [{"key": "B", "value": "2"}]}),
    Case("PUT", f"{SVC}/env/A", Role.MEMBER, {"value": "3"}),
    Case("DELETE", f"{SVC}/env/A", Role.MEMBER),
    Case("GET", f"{SVC}/processes", Role.VIEWER),
    Case("GET", f"{SVC}/logs?since=1h&tail=5", Role.VIEWER),
    Case("GET", "/api/v1/infra/servers/{server}", Role.VIEWER),
    Case("POST", "/api/v1/infra/servers/{server}/check", Role.MEMBER),
    Case("DELETE", "/api/v1/infra/servers/{server}", Role.ADMIN),
    Case("GET", "/api/v1/workspaces/{workspace}", Role.VIEWER),
    Case("PATCH", "/api/v1/workspaces/{workspace}", Role.OWNER, {"display_name": "x"}),
    Case("DELETE", "/api/v1/workspaces/{workspace}", Role.OWNER),
    Case("GET", "/api/v1/workspaces/{workspace}/members", Role.VIEWER),
    Case("POST", "/api/v1/workspaces/{workspace}/invitations", Role.ADMIN,
         {"email": "new@example.com", "role": "member"}),
    Case("GET", "/api/v1/workspaces/{workspace}/invitations", Role.ADMIN),
    Case("DELETE", "/api/v1/workspaces/{workspace}/invitations/{invitation}", Role.ADMIN),
    Case("PATCH", "/api/v1/workspaces/{workspace}/members/{target}", Role.ADMIN,
         {"role": "member"}),
    Case("DELETE", "/api/v1/workspaces/{workspace}/members/{target}", Role.ADMIN),
    Case("DELETE", "/api/v1/auth/tokens/{token}", Role.ADMIN),
    Case("DELETE", "/api/v1/infra/credentials/do", Role.ADMIN),
]


@pytest.fixture
async def world(client, platform, owner, member_of, stranger) -> dict[str, Any]:
    """The owner's workspace with one of everything, and a caller for every role."""
    async def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = await client.request(method, path, json=body, headers=owner.headers)
        assert answer.status_code < 300, answer.text
        return answer.json()

    await call("POST", "/api/v1/projects", {"name": "shop"})
    await call("POST", "/api/v1/projects/shop/services", {"name": "web"})
    await call("PUT", f"{SVC}/env/A", {"value": "1"})
    token = await call("POST", "/api/v1/auth/tokens", {"name": "owners-token"})
    await call("PUT", "/api/v1/infra/credentials/do", {"provider": "digitalocean", "token": "t"})
    server = await register_server(platform, owner.workspace_id, name="node-1", provider="local")
    target = await member_of(Role.VIEWER, "target@example.com")
    invitation = await call("POST", f"/api/v1/workspaces/{owner.workspace_id}/invitations",
                            {"email": "invited@example.com", "role": "viewer"})
    ids = {"server": server.id, "workspace": owner.workspace_id, "target": target.user_id,
           "token": token["id"], "invitation": invitation["id"]}
    callers = {role: await member_of(role) for role in ROLES if role is not Role.OWNER}
    return {"ids": ids, "callers": {**callers, Role.OWNER: owner}, "stranger": stranger}


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_other_workspace_is_not_found_and_roles_are_enforced(client, world, case: Case):
    path = case.path.format(**world["ids"])
    answer = await client.request(case.method, path, json=case.body,
                                  headers=world["stranger"].headers)
    assert answer.status_code == 404, f"stranger: {answer.status_code} {answer.text}"
    for role in ROLES:
        headers = world["callers"][role].headers
        answer = await client.request(case.method, path, json=case.body, headers=headers)
        allowed = ROLES.index(role) >= ROLES.index(case.least_role)
        expected = "2xx" if allowed else "403"
        assert (answer.status_code < 300) == allowed, f"{role}: {answer.status_code} {answer.text}"
        if not allowed:
            assert answer.status_code == 403, f"{role}: wanted {expected}, got {answer.text}"
        if allowed:
            break  # the first role that may act has changed the world; stop here


async def test_listings_show_nothing_of_another_workspace(client, world):
    stranger = world["stranger"].headers
    for path in ("/api/v1/projects", "/api/v1/infra/servers", "/api/v1/history",
                 "/api/v1/auth/tokens", "/api/v1/infra/credentials", "/api/v1/auth/sessions",
                 f"/api/v1/workspaces/{world['stranger'].workspace_id}/invitations"):
        answer = await client.get(path, headers=stranger)
        assert answer.status_code == 200, answer.text
        assert world["ids"]["workspace"] not in answer.text
        assert "shop" not in answer.text
        assert "node-1" not in answer.text
        assert "invited@example.com" not in answer.text


async def test_workspace_header_for_a_workspace_you_are_not_in_is_not_found(client, world):
    headers = {**world["stranger"].headers, "X-Dockyard-Workspace": world["ids"]["workspace"]}
    answer = await client.get("/api/v1/projects", headers=headers)
    assert answer.status_code == 404


async def test_history_is_for_admins(client, world):
    for role in ROLES:
        answer = await client.get("/api/v1/history", headers=world["callers"][role].headers)
        assert answer.status_code == (200 if role in (Role.ADMIN, Role.OWNER) else 403)
