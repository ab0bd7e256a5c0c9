"""A filling disk is seen: node2's Docker data root is an 8 MiB tmpfs the test fills. node2's
agent cleans it by itself (its disk guard's next round), the metrics job (as the worker runs
it) reads the real agent apps' figures and turns that cleaning into one server event however
often it runs, the alert evaluator raises a critical disk alert for node2 alone, and the
server list (API and CLI) shows each server's free space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from dockyard.agent.client import NodeAgentClient
from dockyard.agent.hoststats import HostSampler
from dockyard.cli import output
from dockyard.cli.resources import SERVER_COLUMNS, disk_free
from dockyard.core import app_metrics
from dockyard.core.alerts import evaluate
from dockyard.core.fleet import ClientFactory
from dockyard.core.platform import Platform
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.alert_tables import Alert
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server, ServerEvent
from tests import sqlite_only
from tests.conftest import make_settings
from tests.deploy.conftest import SECRET, AgentNode
from tests.deploy.test_disk_floor import (  # noqa: F401
    FLOOR,
    MIB,
    fill,
    guard,
    small_disk_fixture,
)
from tests.deploy.test_engine import Nodes

database_url = sqlite_only.database_url  # nothing here depends on the database kind


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    result = make_settings(tmp_path, database_url, **FLOOR)
    ensure_key_file(result.key_file)
    return result


def clients(nodes: Nodes) -> ClientFactory:
    def client_of(server: ServerPublic) -> NodeAgentClient:
        return NodeAgentClient(f"http://{server.name}.test", SECRET,
                               transport=nodes[server.name].network)

    return client_of


async def disk_events(platform: Platform) -> list[tuple[str, str]]:
    async def tx(s: AsyncSession) -> list[tuple[str, str]]:
        query = (select(Server.name, ServerEvent.message).join(Server)
                 .where(ServerEvent.kind == "disk").order_by(ServerEvent.time))
        return [(name, message) for name, message in await s.execute(query)]

    return await platform.db.read(tx)


async def disk_alerts(platform: Platform) -> list[tuple[str, str, str, str]]:
    async def tx(s: AsyncSession) -> list[tuple[str, str, str, str]]:
        query = select(Alert.severity, Alert.subject, Alert.detail, Alert.state).where(
            Alert.kind == "disk-full")
        return [tuple(row) for row in await s.execute(query)]  # type: ignore[misc]

    return await platform.db.read(tx)


async def test_a_filling_disk_is_cleaned_recorded_alerted_and_listed(
        platform: Platform, shop: Any, nodes: Nodes, small_disk: Path,
        client: httpx.AsyncClient) -> None:
    nodes["node2"].docker.root = str(small_disk)
    filler = fill(small_disk, leave=MIB)

    assert await guard(nodes["node1"]).check() is None  # far from its threshold
    cleaned = await guard(nodes["node2"]).check()  # its next round (no background loop here)
    assert cleaned is not None
    assert (cleaned.trigger, cleaned.release_tags_removed) == ("threshold", [])
    for _ in range(2):
        await app_metrics.collect(platform, clients(nodes))

    [(server, message)] = await disk_events(platform)
    assert server == "node2"
    assert message == ("disk 88% used, cleaned by the agent: removed 0 old release image tags, "
                       "0 dangling images and 0 stopped containers, freeing about 0 MB (88% "
                       "used now)")
    await evaluate(platform)
    [(severity, subject, detail, state)] = await disk_alerts(platform)
    assert (severity, subject, state) == ("critical", "the disk of server node2 is 88% full",
                                          "firing")
    assert detail == (f"1.0 MB free on {small_disk}, under the floor of 2.1 MB: deploys to it "
                      "are refused")

    listed = (await client.get("/api/v1/infra/servers", headers=shop.headers)).json()
    disks = {x["name"]: x["disk"] for x in listed}
    assert disks["node2"][1] == {"roles": ["docker"], "path": str(small_disk),
                                 "total_bytes": 8 * MIB, "free_bytes": MIB}
    assert [x["roles"] for x in disks["node1"]] == [["agent"]]  # its Docker's root: none
    assert disk_free(disks["node2"]) == "12% (1.0 MiB)"
    lines = render([{**x, "disk_free": disk_free(x["disk"])} for x in listed])
    assert max(len(line) for line in lines) <= 80
    assert "12% (1.0 MiB)" in "\n".join(lines)

    filler.unlink()
    await sampler(nodes["node2"]).sample()  # its next round (no background loop here)
    await app_metrics.collect(platform, clients(nodes))
    await evaluate(platform)
    assert [row[3] for row in await disk_alerts(platform)] == ["resolved"]


def sampler(node: AgentNode) -> HostSampler:
    app = node.transport.app
    assert isinstance(app, Starlette)
    found: HostSampler = app.state.host_sampler
    return found


def render(rows: list[dict[str, Any]]) -> list[str]:
    """What `dockyard servers list` prints on an 80-column terminal."""
    console = Console(width=80, record=True, safe_box=True, soft_wrap=True)
    original, output.console = output.console, console
    try:
        output.show(rows, [*SERVER_COLUMNS, "disk_free"], as_json=False)
    finally:
        output.console = original
    return console.export_text().splitlines()
