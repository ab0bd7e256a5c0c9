"""Domains through the API (a service not deployed anywhere yet, so no agent is reached): what
is refused and why, who may do what, and that nothing is half-recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from dockyard.models.enums import Role
from tests import sqlite_only
from tests.conftest import Account

database_url = sqlite_only.database_url  # nothing here depends on the database kind

SERVICE = "/api/v1/projects/shop/services/web/domains"


@pytest.fixture
async def shop(client: httpx.AsyncClient, owner: Account) -> Account:
    for path, body in (("/api/v1/projects", {"name": "shop"}),
                       ("/api/v1/projects/shop/services", {"name": "web"})):
        answer = await client.post(path, json=body, headers=owner.headers)
        assert answer.status_code == 201, answer.text
    return owner


async def add(client: httpx.AsyncClient, who: Account, **body: Any) -> httpx.Response:
    return await client.post(SERVICE, json={"hostname": "shop.example.com", **body},
                             headers=who.headers)


async def test_a_domain_is_added_listed_shown_and_removed(
        client: httpx.AsyncClient, shop: Account) -> None:
    added = await add(client, shop, tls="none", hsts=True)
    assert added.status_code == 201, added.text
    assert {k: added.json()[k] for k in ("hostname", "project", "service", "tls", "hsts",
                                         "certificate_status", "dns_status")} == {
        "hostname": "shop.example.com", "project": "shop", "service": "web", "tls": "none",
        "hsts": True, "certificate_status": "none", "dns_status": "none"}
    listed = await client.get("/api/v1/domains", params={"project": "shop"},
                              headers=shop.headers)
    assert [d["hostname"] for d in listed.json()] == ["shop.example.com"]
    shown = await client.get("/api/v1/domains/shop.example.com", headers=shop.headers)
    assert shown.json() == added.json()
    gone = await client.delete("/api/v1/domains/shop.example.com", headers=shop.headers)
    assert gone.status_code == 204
    again = await client.get("/api/v1/domains/shop.example.com", headers=shop.headers)
    assert again.status_code == 404


async def test_an_acme_domain_of_a_service_on_no_server_says_to_deploy_first(
        client: httpx.AsyncClient, shop: Account) -> None:
    added = await add(client, shop)
    assert added.status_code == 201, added.text
    assert added.json()["certificate_status"] == "failed"
    assert "deploy it first" in added.json()["certificate_error"]


@pytest.mark.parametrize(("body", "says"), [
    ({"hostname": "shop.example.com\n"}, "lowercase domain name"),
    ({"hostname": "Shop.Example.com"}, "lowercase domain name"),
    ({"hostname": "*.example.com"}, "no wildcard"),
    ({"hostname": "web.shop.localhost"}, "under localhost"),
    ({"hostname": "a" * 61 + "." + "b" * 30 + ".com"}, "at most 95 characters"),
    ({"tls": "cloudflare"}, "needs a Cloudflare credential"),
    ({"tls": "none", "acme_directory": "https://acme.example.com/dir"}, "only with tls"),
    ({"acme_directory": "http://acme.example.com/dir"}, "https:// URL"),
    ({"tls": "letsencrypt"}, "acme"),
])
async def test_refused_domains_say_why_and_leave_nothing(
        client: httpx.AsyncClient, shop: Account, body: dict[str, Any], says: str) -> None:
    refused = await add(client, shop, **body)
    assert refused.status_code == 422, refused.text
    assert says in refused.text
    assert (await client.get("/api/v1/domains", headers=shop.headers)).json() == []


async def test_a_name_is_routed_to_one_service_only(
        client: httpx.AsyncClient, shop: Account) -> None:
    assert (await add(client, shop, tls="none")).status_code == 201
    again = await add(client, shop, tls="none")
    assert again.status_code == 409
    assert "already routed" in again.text


async def test_dns_needs_a_cloudflare_credential_of_the_workspace(
        client: httpx.AsyncClient, shop: Account) -> None:
    missing = await add(client, shop, tls="none", dns_credential="cf")
    assert missing.status_code == 404
    stored = await client.put("/api/v1/infra/credentials/do", headers=shop.headers,
                              json={"provider": "digitalocean", "token": "dop_v1_x"})
    assert stored.status_code == 200, stored.text
    wrong = await add(client, shop, tls="none", dns_credential="do")
    assert wrong.status_code == 422
    assert "need a cloudflare one" in wrong.text


async def test_viewers_read_domains_and_change_none(
        client: httpx.AsyncClient, shop: Account,
        member_of: Callable[..., Awaitable[Account]]) -> None:
    assert (await add(client, shop, tls="none")).status_code == 201
    viewer = await member_of(Role.VIEWER)
    assert (await add(client, viewer, hostname="b.example.com", tls="none")).status_code == 403
    listed = await client.get("/api/v1/domains", headers=viewer.headers)
    assert [d["hostname"] for d in listed.json()] == ["shop.example.com"]
    for method, path in (("DELETE", "/api/v1/domains/shop.example.com"),
                         ("POST", "/api/v1/domains/shop.example.com/renew")):
        answer = await client.request(method, path, headers=viewer.headers)
        assert answer.status_code == 403, (method, path, answer.text)


async def test_another_workspace_sees_none_of_them(
        client: httpx.AsyncClient, shop: Account, stranger: Account) -> None:
    assert (await add(client, shop, tls="none")).status_code == 201
    assert (await client.get("/api/v1/domains", headers=stranger.headers)).json() == []
    hidden = await client.get("/api/v1/domains/shop.example.com", headers=stranger.headers)
    assert hidden.status_code == 404


async def test_a_service_or_project_with_domains_is_not_deleted_until_they_are_removed(
        client: httpx.AsyncClient, shop: Account) -> None:
    assert (await add(client, shop, tls="none")).status_code == 201
    for path in ("/api/v1/projects/shop/services/web", "/api/v1/projects/shop"):
        refused = await client.delete(path, headers=shop.headers)
        assert refused.status_code == 409, refused.text
        assert "dockyard domains remove shop.example.com" in refused.text
    assert (await client.delete("/api/v1/domains/shop.example.com",
                                headers=shop.headers)).status_code == 204
    gone = await client.delete("/api/v1/projects/shop/services/web", headers=shop.headers)
    assert gone.status_code == 204, gone.text
