"""The control plane's record of the agents' disk cleanings, on SQLite and Postgres: each
cleaning becomes one server event `disk` however often the metrics job sees it again, a newer
one adds one; asking a server that does not answer to prune is a 502 naming it."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.disk_cleanups import record_new
from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.models.disk import DiskCleanup
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import ServerEvent
from tests.conftest import Account
from tests.ports import free_port


def cleanup(at: float, tags: list[str]) -> DiskCleanup:
    return DiskCleanup(id=f"c{at}", at=at, trigger="threshold", used_before=0.9,
                       used_after=0.6, release_tags_removed=tags, bytes_freed=3_000_000_000)


async def node(platform: Platform, owner: Account, port: int = 8421) -> ServerPublic:
    return await register_server(platform, owner.workspace_id, name="node-1",
                                 provider="manual", ip="127.0.0.1", agent_port=port,
                                 agent_insecure_http=True)


async def test_each_cleaning_becomes_one_event_however_often_it_is_seen(
        platform: Platform, owner: Account) -> None:
    server = await node(platform, owner)
    first = cleanup(1_790_000_000.123456, ["shop/web:deploy_1"])
    second = cleanup(1_790_000_000.123457, [])
    recorded = []
    for seen in ([first], [first], [first, second], [first, second]):
        async def tx(s: AsyncSession, seen: list[DiskCleanup] = seen) -> int:
            return await record_new(s, server.id, seen)

        recorded.append(await platform.db.write(tx))

    async def events(s: AsyncSession) -> list[tuple[str, str]]:
        query = select(ServerEvent.kind, ServerEvent.message).order_by(ServerEvent.id)
        return [(kind, message) for kind, message in await s.execute(query)]

    assert recorded == [1, 0, 1, 0]
    assert await platform.db.read(events) == [("disk", first.summary()),
                                              ("disk", second.summary())]
    assert first.summary() == (
        "disk 90% used, cleaned by the agent: removed 1 old release image tags, 0 dangling "
        "images and 0 stopped containers, freeing about 3000 MB (60% used now)")


async def test_pruning_a_server_that_does_not_answer_is_a_502_naming_it(
        platform: Platform, owner: Account, client: httpx.AsyncClient) -> None:
    server = await node(platform, owner, port=free_port())
    answer = await client.post(f"/api/v1/infra/servers/{server.id}/prune",
                               headers=owner.headers)
    assert answer.status_code == 502, answer.text
    assert answer.json()["detail"].startswith("server node-1: ")
