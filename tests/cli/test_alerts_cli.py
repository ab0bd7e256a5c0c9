"""`dockyard notify ...` and `dockyard alerts ...` as a user runs them: the real console script
against a real control plane (one for the module, tests/cli/conftest.py), with a real
signature-checking receiver for `notify test`."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.models.base import new_id
from dockyard.models.tables import Placement, Server, Service
from tests.alerts.receivers import HttpReceiver, free_port, serving
from tests.cli.conftest import User
from tests.conftest import make_settings
from tests.live import ok, ok_json, one_line_error
from tests.queue.helpers import eventually


def test_a_webhook_channel_from_add_to_remove(user: User) -> None:
    receiver = HttpReceiver(free_port())
    added = ok(user.run("notify", "add", "webhook", receiver.url))
    found = re.search(r"channel ([0-9a-f]{32}) .*\nSigning secret \(shown only now\): (\S+)",
                      added)
    assert found, added
    channel, receiver.secret = found.group(1), found.group(2)
    listed = ok_json(user.run("notify", "list", "--json"))
    assert [(c["id"], c["kind"], c["target"]) for c in listed] == [
        (channel, "webhook", f"http://127.0.0.1:{receiver.port}/********")]
    assert receiver.secret not in str(listed)
    with serving(receiver):
        tested = ok_json(user.run("notify", "test", channel, "--json"))
    assert (tested["status"], tested["response_code"]) == ("sent", 204)
    assert [b["event"] for b in receiver.bodies] == ["test"]
    shown = ok(user.run("notify", "deliveries", channel))
    assert "test" in shown
    assert "sent" in shown
    ok(user.run("notify", "remove", channel))
    assert ok_json(user.run("notify", "list", "--json")) == []


def test_bad_channels_get_one_line_errors(user: User) -> None:
    one_line_error(user.run("notify", "add", "webhook", "ftp://example.com/x"), "https://")
    one_line_error(user.run("notify", "add", "email", "nobody"), "not an email address")
    one_line_error(user.run("notify", "test", "0" * 32), "not found")


def test_alert_rules_and_the_alert_list(user: User) -> None:
    ok(user.run("projects", "create", "shop"))
    ok(user.run("services", "create", "web", "-p", "shop"))
    shown = ok_json(user.run("alerts", "rules", "-p", "shop", "-s", "web", "--json"))
    assert (shown["max_5xx_rate"], shown["max_p95_ms"]) == (None, None)
    ok(user.run("alerts", "rules", "-p", "shop", "-s", "web", "--max-5xx-rate", "0.02",
                "--max-p95-ms", "750", "--window", "120"))
    shown = ok_json(user.run("alerts", "rules", "-p", "shop", "-s", "web", "--json"))
    assert (shown["max_5xx_rate"], shown["max_p95_ms"], shown["window_seconds"]) == (
        0.02, 750, 120)
    ok(user.run("alerts", "rules", "-p", "shop", "-s", "web", "--off"))
    shown = ok_json(user.run("alerts", "rules", "-p", "shop", "-s", "web", "--json"))
    assert (shown["max_5xx_rate"], shown["max_p95_ms"]) == (None, None)
    assert ok_json(user.run("alerts", "list", "--firing", "--json")) == []


@pytest.fixture(scope="module")
def plane_settings() -> dict[str, str]:
    """The traffic watch checks at start (no copy yet), then every 300 s, longer than the
    module takes: the copy marked up by hand has no agent, and checks would mark it down
    again."""
    return {"DOCKYARD_TRAFFIC_CHECK_SECONDS": "300"}


async def test_the_running_worker_fires_and_resolves_a_down_alert(user: User) -> None:
    """`dockyard up`'s own worker evaluates on its schedule and delivers through its queue."""
    ok(user.run("projects", "create", "shop"))
    ok(user.run("services", "create", "web", "-p", "shop"))
    receiver = HttpReceiver(free_port())
    added = ok(user.run("notify", "add", "webhook", receiver.url))
    receiver.secret = added.rsplit(": ", 1)[1].strip()
    platform = Platform.open(make_settings(user.data_dir, None))
    try:
        copy = await _down_copy(platform, user.workspace_id)
        with serving(receiver):
            await eventually(lambda: _events(receiver, ["fired"]), within=60, what="fired")
            firing = ok_json(user.run("alerts", "list", "--firing", "--json"))
            assert "shop/web is down on every server" in [a["subject"] for a in firing]
            await platform.db.write(lambda s: _set_traffic(s, copy, "up"))
            await eventually(lambda: _events(receiver, ["fired", "resolved"]), within=60,
                             what="resolved")
    finally:
        await platform.close()
    assert receiver.refused == 0
    firing = ok_json(user.run("alerts", "list", "--firing", "--json"))
    assert "service-down" not in [a["kind"] for a in firing]


async def _events(receiver: HttpReceiver, wanted: list[str]) -> bool:
    """The service-down alert's events (the server, with no agent, may raise its own)."""
    return [b["event"] for b in receiver.bodies if b["kind"] == "service-down"] == wanted


async def _down_copy(platform: Platform, workspace_id: str) -> str:
    """A server whose copy of the workspace's shop/web the traffic watch marked down."""

    async def tx(s: AsyncSession) -> str:
        service = await s.scalar(select(Service).where(
            Service.workspace_id == workspace_id, Service.name == "web"))
        assert service is not None
        server = Server(id=new_id(), workspace_id=service.workspace_id, provider="local",
                        name="s1")
        s.add(server)
        await s.flush()
        copy = Placement(id=new_id(), workspace_id=service.workspace_id, service_id=service.id,
                         server_id=server.id, traffic="down", traffic_reason="health check")
        s.add(copy)
        return copy.id

    return await platform.db.write(tx)


async def _set_traffic(s: AsyncSession, copy: str, traffic: str) -> None:
    (await s.get_one(Placement, copy)).traffic = traffic
