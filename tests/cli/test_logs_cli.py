"""`dockyard logs` as a user runs it: the real console script against a real control plane
whose database holds stored log lines (as the worker's collection job stores them)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.db import Database
from dockyard.kernel.settings import Settings
from dockyard.models.base import utcnow
from dockyard.models.tables import LogLine, Project, Service
from tests.live import DOCKYARD, Live, ok, one_line_error

RELEASE = "9f8e7d6c" + "0" * 24


def store_line(live: Live, line: str, *, stream: str = "stdout", age_minutes: float = 0) -> None:
    async def insert() -> None:
        db = Database(Settings(data_dir=live.data_dir))

        async def tx(s: AsyncSession) -> None:
            service = await s.scalar(select(Service).join(Project))
            assert service is not None
            project = await s.get_one(Project, service.project_id)
            s.add(LogLine(workspace_id=project.workspace_id, service_id=service.id,
                          server_name="node-1", process_type="web", replica=1,
                          release=RELEASE, stream=stream, line=line, size=len(line),
                          time=utcnow() - timedelta(minutes=age_minutes)))

        try:
            await db.write(tx)
        finally:
            await db.dispose()

    asyncio.run(insert())


def test_logs_prints_tagged_lines_and_filters(live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop", "--image", "nginx:1.27"))
    store_line(live, "GET / 200", age_minutes=90)
    store_line(live, "boom", stream="stderr", age_minutes=1)
    shown = ok(live.run("logs", "-p", "shop", "-s", "web")).splitlines()
    assert len(shown) == 2
    assert shown[0].endswith("node-1 web.1 9f8e7d6c| GET / 200")
    assert shown[1].endswith("node-1 web.1 9f8e7d6c! boom")
    recent = ok(live.run("logs", "-p", "shop", "-s", "web", "--since", "1h", "--json"))
    assert [json.loads(line)["line"] for line in recent.splitlines()] == ["boom"]
    found = ok(live.run("logs", "-p", "shop", "-s", "web", "--search", "get /")).splitlines()
    assert [line.rsplit("| ", 1)[1] for line in found] == ["GET / 200"]
    one_line_error(live.run("logs", "-p", "shop", "-s", "web", "--since", "yesterday"),
                   "unit")
    one_line_error(live.run("logs", "-p", "shop", "-s", "nope"), "not found")


def test_logs_follow_prints_new_lines_as_they_are_stored(live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop", "--image", "nginx:1.27"))
    store_line(live, "first")
    follower = subprocess.Popen([DOCKYARD, "logs", "-p", "shop", "-s", "web", "-f"],
                                env=live.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().rstrip().endswith("| first")
        store_line(live, "second")
        assert follower.stdout.readline().rstrip().endswith("| second")
    finally:
        follower.kill()
        follower.wait()
