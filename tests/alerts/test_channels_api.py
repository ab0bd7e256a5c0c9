"""Notification channels through the API: a webhook's secret generated and shown once, the
test notification reaching a real receiver that checks the signature, validation, roles and
another workspace seeing nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from dockyard.models.enums import Role
from tests import sqlite_only
from tests.alerts.receivers import HttpReceiver, free_port, serving
from tests.conftest import Account

database_url = sqlite_only.database_url  # nothing here depends on the database kind

CHANNELS = "/api/v1/notification-channels"
RULES = "/api/v1/projects/shop/services/web/alert-rules"


async def add_channel(client: httpx.AsyncClient, account: Account, kind: str, target: str
                      ) -> dict[str, object]:
    answer = await client.post(CHANNELS, json={"kind": kind, "target": target},
                               headers=account.headers)
    assert answer.status_code == 201, answer.text
    found: dict[str, object] = answer.json()
    return found


async def test_a_webhook_gets_a_generated_secret_shown_once_and_the_test_is_signed(
        client: httpx.AsyncClient, owner: Account) -> None:
    receiver = HttpReceiver(free_port())
    created = await add_channel(client, owner, "webhook", receiver.url)
    assert isinstance(created["secret"], str)
    assert len(created["secret"]) >= 32
    listed = (await client.get(CHANNELS, headers=owner.headers)).json()
    assert [c["id"] for c in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert listed[0]["target"] == f"http://127.0.0.1:{receiver.port}/********"  # path masked
    receiver.secret = created["secret"]
    with serving(receiver):
        tested = (await client.post(f"{CHANNELS}/{created['id']}/test",
                                    headers=owner.headers)).json()
    assert (tested["status"], tested["response_code"], tested["attempts"]) == ("sent", 204, 1)
    assert receiver.refused == 0
    assert [(b["event"], b["subject"]) for b in receiver.bodies] == [
        ("test", "Dockyard test notification")]
    deliveries = (await client.get(f"{CHANNELS}/{created['id']}/deliveries",
                                   headers=owner.headers)).json()
    assert [(d["id"], d["status"], d["subject"]) for d in deliveries] == [
        (tested["id"], "sent", "Dockyard test notification")]


async def test_a_receiver_with_another_secret_refuses_and_the_delivery_says_so(
        client: httpx.AsyncClient, owner: Account) -> None:
    receiver = HttpReceiver(free_port(), secret="not-the-generated-one")
    created = await add_channel(client, owner, "webhook", receiver.url)
    with serving(receiver):
        tested = (await client.post(f"{CHANNELS}/{created['id']}/test",
                                    headers=owner.headers)).json()
    assert (tested["status"], tested["response_code"], receiver.refused) == ("failed", 401, 1)
    assert tested["last_error"] == "answered 401 Unauthorized"  # never the body


async def test_a_test_to_a_receiver_that_is_down_is_recorded_failed(
        client: httpx.AsyncClient, owner: Account) -> None:
    created = await add_channel(client, owner, "slack", f"http://127.0.0.1:{free_port()}/x")
    tested = (await client.post(f"{CHANNELS}/{created['id']}/test",
                                headers=owner.headers)).json()
    assert (tested["status"], tested["response_code"]) == ("failed", None)
    assert "ConnectError" in tested["last_error"]


@pytest.mark.parametrize(("body", "says"), [
    ({"kind": "webhook", "target": "ftp://example.com/x"}, "https://"),
    ({"kind": "webhook", "target": "https://example.com/a b"}, "https://"),
    ({"kind": "slack", "target": "https://hooks.example.com/x#frag"}, "https://"),
    ({"kind": "pager", "target": "https://example.com/x"}, "webhook"),
    ({"kind": "email", "target": "not-an-address"}, "not an email address"),
    ({"kind": "webhook", "target": "http://169.254.169.254/metadata/v1/user-data"},
     "link-local"),
    ({"kind": "webhook", "target": "https://example.com/x", "secret": "mine"}, "secret"),
])
async def test_bad_channels_are_refused_with_a_reason(
        client: httpx.AsyncClient, owner: Account, body: dict[str, str], says: str) -> None:
    answer = await client.post(CHANNELS, json=body, headers=owner.headers)
    assert answer.status_code == 422, answer.text
    assert says in answer.text
    assert (await client.get(CHANNELS, headers=owner.headers)).json() == []


async def test_email_needs_an_smtp_server(client: httpx.AsyncClient, owner: Account) -> None:
    answer = await client.post(CHANNELS, json={"kind": "email", "target": "ops@example.com"},
                               headers=owner.headers)
    assert answer.status_code == 409
    assert "DOCKYARD_SMTP_HOST" in answer.json()["detail"]


async def test_members_read_admins_change(
        client: httpx.AsyncClient, owner: Account,
        member_of: Callable[..., Awaitable[Account]]) -> None:
    member = await member_of(Role.MEMBER)
    created = await add_channel(client, owner, "discord", "https://discord.example.com/api/x")
    assert (await client.get(CHANNELS, headers=member.headers)).json()[0]["id"] == created["id"]
    body = {"kind": "discord", "target": "https://discord.example.com/api/y"}
    assert (await client.post(CHANNELS, json=body, headers=member.headers)).status_code == 403
    for method, path in (("DELETE", f"{CHANNELS}/{created['id']}"),
                         ("POST", f"{CHANNELS}/{created['id']}/test")):
        assert (await client.request(method, path, headers=member.headers)).status_code == 403
    answer = await client.delete(f"{CHANNELS}/{created['id']}", headers=owner.headers)
    assert answer.status_code == 204
    assert (await client.get(CHANNELS, headers=owner.headers)).json() == []


async def test_another_workspace_sees_nothing(
        client: httpx.AsyncClient, owner: Account, stranger: Account) -> None:
    created = await add_channel(client, owner, "webhook", "https://hooks.example.com/x")
    assert (await client.get(CHANNELS, headers=stranger.headers)).json() == []
    assert (await client.get("/api/v1/alerts", headers=stranger.headers)).json() == []
    for method, path in (("GET", f"{CHANNELS}/{created['id']}/deliveries"),
                         ("POST", f"{CHANNELS}/{created['id']}/test"),
                         ("DELETE", f"{CHANNELS}/{created['id']}")):
        answer = await client.request(method, path, headers=stranger.headers)
        assert answer.status_code == 404, (method, path)
    assert len((await client.get(CHANNELS, headers=owner.headers)).json()) == 1


async def test_alert_rules_are_off_by_default_set_and_validated(
        client: httpx.AsyncClient, owner: Account) -> None:
    for path, body in (("/api/v1/projects", {"name": "shop"}),
                       ("/api/v1/projects/shop/services", {"name": "web"})):
        assert (await client.post(path, json=body, headers=owner.headers)).status_code == 201
    shown = (await client.get(RULES, headers=owner.headers)).json()
    assert (shown["max_5xx_rate"], shown["max_p95_ms"], shown["window_seconds"]) == (
        None, None, 300)
    for bad in ({"max_5xx_rate": 1.5}, {"max_p95_ms": 0}, {"window_seconds": 10}):
        assert (await client.put(RULES, json=bad, headers=owner.headers)).status_code == 422
    rules = {"max_5xx_rate": 0.05, "max_p95_ms": 800, "window_seconds": 120}
    assert (await client.put(RULES, json=rules, headers=owner.headers)).status_code == 200
    shown = (await client.get(RULES, headers=owner.headers)).json()
    assert (shown["max_5xx_rate"], shown["max_p95_ms"], shown["window_seconds"]) == (
        0.05, 800, 120)
    answer = await client.get("/api/v1/projects/shop/services/nope/alert-rules",
                              headers=owner.headers)
    assert answer.status_code == 404
