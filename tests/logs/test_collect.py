"""The worker's log jobs: collection from a real agent on real Docker, and retention."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.logbuffer import LogEntry
from dockyard.agent.runtime import DockerRuntime
from dockyard.core import logcollect
from dockyard.core.platform import Platform
from dockyard.deploy.plan import PROCESS_TYPE_LABEL, REPLICA_LABEL
from dockyard.models.base import utcnow
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import LogCursor, LogLine
from tests.conftest import Account
from tests.logs.conftest import ClientOf, add_server, run_printer


async def stored_lines(platform: Platform) -> list[LogLine]:
    async def tx(s: AsyncSession) -> list[LogLine]:
        return list((await s.scalars(select(LogLine).order_by(LogLine.id))).all())

    return await platform.db.read(tx)


async def test_collection_stores_each_line_once_tagged(
        platform: Platform, shop: Account, client_of: ClientOf, runtime: DockerRuntime) -> None:
    server = await add_server(platform, shop.workspace_id)
    name = await run_printer(runtime, labels={PROCESS_TYPE_LABEL: "worker", REPLICA_LABEL: "2"})
    await logcollect.collect(platform, client_of)
    await logcollect.collect(platform, client_of)
    mine = [row for row in await stored_lines(platform) if row.container == name]
    # Docker stamps each line as it reads it: the two streams interleave as its pipes deliver.
    assert [row.line for row in mine if row.stream == "stdout"] == ["out 0", "out 1", "out 2"]
    assert [row.line for row in mine if row.stream == "stderr"] == ["err line"]
    assert [row.time for row in mine] == sorted(row.time for row in mine)
    first = mine[-1]
    assert (first.server_id, first.server_name) == (server.id, "node-1")
    assert (first.process_type, first.replica, first.release) == ("worker", 2, "dep1")
    assert first.workspace_id == shop.workspace_id


async def test_lines_of_other_services_and_workspaces_are_not_stored(
        platform: Platform, shop: Account, client_of: ClientOf, runtime: DockerRuntime) -> None:
    await add_server(platform, shop.workspace_id)
    name = await run_printer(runtime, site="elsewhere-web")
    await logcollect.collect(platform, client_of)
    assert name not in {row.container for row in await stored_lines(platform)}


async def test_an_unreachable_agent_delays_and_loses_nothing(
        platform: Platform, shop: Account, client_of: ClientOf, runtime: DockerRuntime) -> None:
    await add_server(platform, shop.workspace_id)
    name = await run_printer(runtime)
    down = await logcollect.collect(platform)  # the real address answers nobody
    assert down.stored == 0
    await logcollect.collect(platform, client_of)
    assert len([r for r in await stored_lines(platform) if r.container == name]) == 4

    async def cursor(s: AsyncSession) -> LogCursor | None:
        return await s.scalar(select(LogCursor))

    found = await platform.db.read(cursor)
    assert found is not None
    assert found.lost == 0


async def add_lines(platform: Platform, service_id: str, workspace_id: str,
                    ages_and_sizes: list[tuple[timedelta, int]]) -> None:
    async def tx(s: AsyncSession) -> None:
        s.add_all(LogLine(workspace_id=workspace_id, service_id=service_id, stream="stdout",
                          time=utcnow() - age, line="x" * size, size=size)
                  for age, size in ages_and_sizes)

    await platform.db.write(tx)


async def service_id_of(platform: Platform, workspace_id: str) -> str:
    from dockyard.models.tables import Project, Service

    async def tx(s: AsyncSession) -> str:
        query = select(Service.id).join(Project).where(Project.workspace_id == workspace_id)
        found = await s.scalar(query)
        assert found is not None
        return found

    return await platform.db.read(tx)


async def test_retention_by_age(platform: Platform, shop: Account) -> None:
    service_id = await service_id_of(platform, shop.workspace_id)
    platform.settings.log_retention_days = 1
    await add_lines(platform, service_id, shop.workspace_id,
                    [(timedelta(days=2), 10), (timedelta(hours=23), 10)])
    assert await logcollect.prune(platform) == 1
    assert [r.time > utcnow() - timedelta(days=1) for r in await stored_lines(platform)] == [True]


async def test_retention_by_size_keeps_the_newest(platform: Platform, shop: Account) -> None:
    service_id = await service_id_of(platform, shop.workspace_id)
    platform.settings.log_max_bytes_per_service = 2500
    await add_lines(platform, service_id, shop.workspace_id,
                    [(timedelta(minutes=10 - i), 1000) for i in range(5)])
    assert await logcollect.prune(platform) == 3

    async def total(s: AsyncSession) -> int:
        return int(await s.scalar(select(func.sum(LogLine.size))) or 0)

    assert await platform.db.read(total) == 2000
    assert len(await stored_lines(platform)) == 2


async def test_the_size_bound_counts_each_line_s_row_not_only_its_text(
        platform: Platform, shop: Account) -> None:
    """Ten-byte lines of a chatty app: the bound keeps as many as fit with their rows (the
    text alone would let every one stay), deleted two per transaction."""
    service_id = await service_id_of(platform, shop.workspace_id)
    server = ServerPublic.model_construct(id=None, name="", workspace_id=shop.workspace_id)
    entries = [LogEntry(seq=i, time=utcnow(), container="shop-web-1", service="shop-web",
                        stream="stdout", line=f"line {i:04d}") for i in range(20)]

    async def tx(s: AsyncSession) -> None:
        s.add_all(logcollect._row(server, service_id, entry) for entry in entries)

    await platform.db.write(tx)
    platform.settings.log_max_bytes_per_service = 7 * (10 + logcollect.ROW_BYTES)
    platform.settings.retention_batch = 2
    assert await logcollect.prune(platform) == 13
    assert [r.line for r in await stored_lines(platform)] == [e.line for e in entries[13:]]


async def test_the_last_lines_of_a_removed_container_are_still_collected(
        platform: Platform, shop: Account, client_of: ClientOf, runtime: DockerRuntime) -> None:
    server = await add_server(platform, shop.workspace_id)
    name = await run_printer(runtime)
    async with client_of(server) as agent:
        await agent.remove_container(name)
        assert name not in {c.name for c in await agent.containers()}
    await logcollect.collect(platform, client_of)
    assert len([r for r in await stored_lines(platform) if r.container == name]) == 4
