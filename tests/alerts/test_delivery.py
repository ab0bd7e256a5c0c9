"""Deliveries through the real queue (the outbox, a worker in this process) to real
receivers: the signed webhook, Slack- and Discord-compatible receivers and an SMTP server;
a receiver that is down and then up is reached by a retry; a delivery decided before the
process died is sent by a fresh worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import alerts
from dockyard.core.alert_channels import create_channel
from dockyard.core.platform import Platform
from dockyard.kernel.queue.dbsource import OutboxSource
from dockyard.kernel.queue.outbox import pending_count
from dockyard.kernel.queue.worker import Worker
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.alert_schemas import CHANNEL_CREATE, ChannelKind
from dockyard.models.alert_tables import AlertDelivery
from dockyard.models.enums import Role
from dockyard.models.tables import Placement
from tests.alerts.receivers import HttpReceiver, Mailbox, free_port, serving, smtp_server
from tests.alerts.rows import World, add, build_world, update
from tests.conftest import Account, make_settings
from tests.queue.helpers import eventually, running_worker


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, smtp: tuple[int, Mailbox]) -> Settings:
    result = make_settings(tmp_path, database_url, smtp_host="127.0.0.1", smtp_port=smtp[0],
                           smtp_starttls=False, smtp_from="dockyard@example.com")
    ensure_key_file(result.key_file)
    return result


@asynccontextmanager
async def worker(platform: Platform) -> AsyncIterator[Worker]:
    source = OutboxSource(platform.db, "default", ["default"], "alerts-worker", lease=5)
    resources = {"settings": platform.settings, "db": platform.db}
    async with running_worker(source, alerts.TASKS, resources=resources) as running:
        yield running


async def channel(platform: Platform, owner: Account, kind: ChannelKind, target: str) -> str | None:
    created = await create_channel(platform, owner.actor(Role.OWNER),
                                   CHANNEL_CREATE.validate_python({"kind": kind, "target": target}))
    return created.secret


async def down(platform: Platform, world: World, traffic: str = "down") -> list[Placement]:
    rows = [Placement(workspace_id=world.workspace_id, service_id=world.service_id,
                      server_id=server, traffic=traffic) for server in world.servers]
    await add(platform, *rows)
    return rows


async def statuses(platform: Platform) -> list[tuple[str, str, int]]:
    async def tx(s: AsyncSession) -> list[tuple[str, str, int]]:
        query = select(AlertDelivery.event, AlertDelivery.status, AlertDelivery.attempts)
        return sorted((e, st, a) for e, st, a in await s.execute(query))

    return await platform.db.read(tx)


async def test_every_kind_of_channel_gets_fired_and_resolved(
        platform: Platform, owner: Account, smtp: tuple[int, Mailbox]) -> None:
    world = await build_world(platform, owner.workspace_id)
    hook, slack, discord = (HttpReceiver(free_port()) for _ in range(3))
    hook.secret = await channel(platform, owner, "webhook", hook.url)
    await channel(platform, owner, "slack", slack.url)
    await channel(platform, owner, "discord", discord.url)
    await channel(platform, owner, "email", "ops@example.com")
    rows = await down(platform, world)
    with serving(hook), serving(slack), serving(discord):
        async with worker(platform):
            assert (await alerts.evaluate(platform)).fired == 1
            await eventually(lambda: _all_got(1, hook, slack, discord, smtp[1]), what="fired")
            await update(platform, Placement, rows[0].id, traffic="up")
            assert (await alerts.evaluate(platform)).resolved == 1
            await eventually(lambda: _all_got(2, hook, slack, discord, smtp[1]), what="resolved")
    assert hook.refused == 0
    assert [(b["event"], b["state"], b["key"]) for b in hook.bodies] == [
        ("fired", "firing", f"service-down:{world.service_id}"),
        ("resolved", "resolved", f"service-down:{world.service_id}")]
    assert slack.bodies[0]["text"].startswith("[FIRING] [critical] shop/web is down")
    assert discord.bodies[1]["content"].startswith("[RESOLVED] [critical] shop/web is down")
    assert [m["To"] for m in smtp[1].messages] == ["ops@example.com"] * 2
    assert smtp[1].messages[0]["Subject"].startswith("[FIRING] [critical] shop/web")
    assert await statuses(platform) == sorted([("fired", "sent", 1), ("resolved", "sent", 1)] * 4)


async def _all_got(count: int, *receivers: HttpReceiver | Mailbox) -> bool:
    return all(len(r.bodies if isinstance(r, HttpReceiver) else r.messages) >= count
               for r in receivers)


async def test_a_receiver_down_then_up_is_reached_by_a_retry(
        platform: Platform, owner: Account) -> None:
    world = await build_world(platform, owner.workspace_id)
    hook = HttpReceiver(free_port())  # nothing listens there yet
    hook.secret = await channel(platform, owner, "webhook", hook.url)
    await down(platform, world)
    async with worker(platform):
        await alerts.evaluate(platform)
        await eventually(lambda: _status_is(platform, "retrying"), what="a failed attempt")
        [(_, _, attempts)] = await statuses(platform)
        with serving(hook):
            await eventually(lambda: _status_is(platform, "sent"), within=30, what="the retry")
    [(event, status, attempts_at_end)] = await statuses(platform)
    assert (event, status) == ("fired", "sent")
    assert attempts_at_end > attempts >= 1
    assert [b["event"] for b in hook.bodies] == ["fired"]


async def _status_is(platform: Platform, wanted: str) -> bool:
    return [status for _, status, _ in await statuses(platform)] == [wanted]


async def test_a_delivery_decided_before_a_restart_is_sent_by_a_fresh_worker(
        platform: Platform, owner: Account, settings: Settings) -> None:
    world = await build_world(platform, owner.workspace_id)
    hook = HttpReceiver(free_port())
    hook.secret = await channel(platform, owner, "webhook", hook.url)
    await down(platform, world)
    before = Platform.open(settings)  # the process that decides, then dies
    assert (await alerts.evaluate(before)).fired == 1
    await before.close()
    assert await platform.db.read(lambda s: pending_count(s, "default")) == 1
    with serving(hook):
        async with worker(platform):
            await eventually(lambda: _status_is(platform, "sent"), what="the delivery")
    assert [b["event"] for b in hook.bodies] == ["fired"]
