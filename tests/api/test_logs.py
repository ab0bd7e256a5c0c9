"""The logs API: filters, tail, follow over SSE with Last-Event-ID, input and isolation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.models.base import utcnow
from dockyard.models.tables import LogLine, Project, Service

LOGS = "/api/v1/projects/shop/services/web/logs"
RELEASE_A, RELEASE_B = "a" * 32, "b" * 32


async def add_line(platform: Platform, workspace_id: str, line: str, *, age_minutes: float = 1,
                   process_type: str = "web", release: str = RELEASE_A,
                   stream: str = "stdout") -> None:
    async def tx(s: AsyncSession) -> None:
        query = select(Service.id).join(Project).where(Project.workspace_id == workspace_id)
        s.add(LogLine(workspace_id=workspace_id, service_id=await s.scalar(query),
                      server_name="node-1", process_type=process_type, replica=1,
                      release=release, stream=stream, line=line, size=len(line),
                      time=utcnow() - timedelta(minutes=age_minutes)))

    await platform.db.write(tx)


async def lines(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> list[Any]:
    answer = await client.get(f"{LOGS}{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    return [entry["line"] for entry in answer.json()]


async def test_tail_and_filters(client, platform, shop) -> None:
    h, ws = shop.headers, shop.workspace_id
    await add_line(platform, ws, "old", age_minutes=120)
    await add_line(platform, ws, "worker says", age_minutes=30, process_type="worker")
    await add_line(platform, ws, "new release", age_minutes=5, release=RELEASE_B,
                   stream="stderr")
    await add_line(platform, ws, "newest", age_minutes=1)
    assert await lines(client, h) == ["old", "worker says", "new release", "newest"]
    assert await lines(client, h, "?tail=2") == ["new release", "newest"]
    assert await lines(client, h, "?since=1h") == ["worker says", "new release", "newest"]
    assert await lines(client, h, "?type=worker") == ["worker says"]
    assert await lines(client, h, f"?release={RELEASE_B[:8]}") == ["new release"]
    entry = (await client.get(f"{LOGS}?tail=2", headers=h)).json()[0]
    assert {k: entry[k] for k in ("server", "process_type", "replica", "release", "stream")} == {
        "server": "node-1", "process_type": "web", "replica": 1, "release": RELEASE_B,
        "stream": "stderr"}


async def test_search_finds_lines_containing_the_text_in_any_case(client, platform, shop) -> None:
    h, ws = shop.headers, shop.workspace_id
    for line in ("GET /health 200", "get /Cart 500", "100% done", "1000 done"):
        await add_line(platform, ws, line)
    assert await lines(client, h, "?search=get%20/") == ["GET /health 200", "get /Cart 500"]
    assert await lines(client, h, "?search=CART") == ["get /Cart 500"]
    assert await lines(client, h, "?search=0%25") == ["100% done"]  # % is no wildcard
    assert await lines(client, h, "?search=gone") == []


async def test_bad_filters_are_refused_with_a_reason(client, shop) -> None:
    for query, reason in (("?since=10minutes", "unit"), ("?since=10m%0A", "unit"),
                          ("?tail=0", "greater"), ("?release=xyz", "hex"),
                          ("?type=Web;rm", "process type"), ("?search=a%0Ab", "one line")):
        answer = await client.get(f"{LOGS}{query}", headers=shop.headers)
        assert answer.status_code == 422, (query, answer.text)
        assert reason in answer.text, (query, answer.text)


async def test_viewers_read_logs(client, platform, shop, member_of) -> None:
    from dockyard.models.enums import Role

    await add_line(platform, shop.workspace_id, "hello")
    viewer = await member_of(Role.VIEWER)
    assert await lines(client, viewer.headers) == ["hello"]


async def test_another_workspace_cannot_follow(client, shop, stranger) -> None:
    answer = await client.get(f"{LOGS}/follow", headers=stranger.headers)
    assert answer.status_code == 404


async def test_follow_sends_the_tail_then_new_lines_and_resumes(platform, shop) -> None:
    """The follow generator the SSE route streams (ASGI test transports buffer whole bodies,
    so an endless stream is followed here, in-process, on the real database)."""
    from dockyard.core import logs
    from dockyard.models.enums import Role
    from dockyard.models.logs import LogFilter

    ws, actor = shop.workspace_id, shop.actor(Role.OWNER)
    await add_line(platform, ws, "before")
    batches = logs.follow(platform, actor, "shop", "web", LogFilter(tail=5), poll_seconds=0.05)
    first = await anext(batches)
    assert [entry.line for entry in first] == ["before"]
    await add_line(platform, ws, "after", age_minutes=0)
    later = await anext(batches)
    while not later:
        later = await anext(batches)
    assert [entry.line for entry in later] == ["after"]
    await batches.aclose()
    await add_line(platform, ws, "while away", age_minutes=0)
    resumed = logs.follow(platform, actor, "shop", "web", LogFilter(), after_id=later[-1].id)
    assert [entry.line for entry in await anext(resumed)] == ["while away"]
    await resumed.aclose()


async def test_sse_frames_carry_the_newest_id_and_keep_alive() -> None:
    from datetime import UTC, datetime

    from dockyard.api.routes.logs import _frames
    from dockyard.models.logs import LogLinePublic

    def entry(line_id: int) -> LogLinePublic:
        return LogLinePublic(id=line_id, time=datetime(2026, 1, 1, tzinfo=UTC),
                             server_name="n", process_type="web", replica=0, release="",
                             stream="stdout", line=f"l{line_id}")

    async def later() -> Any:
        yield []
        yield [entry(3)]

    frames = _frames([entry(7), entry(5)], later())
    got = [await anext(frames) for _ in range(4)]
    assert got[0].startswith(b"id: 7\nevent: line\ndata: {")
    assert got[1].startswith(b"id: 7\n")
    assert got[2] == b": keep-alive\n\n"
    assert got[3].startswith(b"id: 7\n")
    assert b'"line":"l3"' in got[3]
