"""A running backup's lease on real SQLite and Postgres: renewed while it runs, so the sweep
leaves it alone; expired once its process is gone, so the sweep fails it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from dockyard.core import backups
from dockyard.core.platform import Platform
from dockyard.models.base import utcnow
from dockyard.models.enums import ServiceKind
from dockyard.models.stateful import Backup
from dockyard.models.tables import Project


async def running_backup(platform: Platform, client: httpx.AsyncClient, owner: Any,
                         age: float) -> str:
    made = await client.post("/api/v1/projects", json={"name": "shop"}, headers=owner.headers)
    assert made.status_code == 201, made.text

    async def tx(s: Any) -> str:
        project = await s.get_one(Project, made.json()["id"])
        then = utcnow() - timedelta(seconds=age)
        backup = Backup(workspace_id=project.workspace_id, project_id=project.id,
                        service_name="db", kind=ServiceKind.POSTGRES, status="running",
                        started_at=then, heartbeat_at=then)
        s.add(backup)
        await s.flush()
        return str(backup.id)

    return await platform.db.write(tx)


async def heartbeat_of(platform: Platform, backup_id: str) -> datetime | None:
    backup = await platform.db.read(lambda s: s.get_one(Backup, backup_id))
    return backup.heartbeat_at


async def no_servers(server: Any) -> Any:
    raise AssertionError("there is no server to sweep")


async def test_a_renewed_lease_survives_the_sweep(
        platform: Platform, client: httpx.AsyncClient, owner: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backup_id = await running_backup(platform, client, owner, age=3600)
    stale = await heartbeat_of(platform, backup_id)
    monkeypatch.setattr(backups, "HEARTBEAT_SECONDS", 0.01)
    async with backups._heartbeat(platform, backup_id):
        for _ in range(1000):  # at most 10 s
            if await heartbeat_of(platform, backup_id) != stale:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the heartbeat was never renewed")
        assert await backups.sweep(platform, no_servers) == []
    backup = await platform.db.read(lambda s: s.get_one(Backup, backup_id))
    assert backup.status == "running"


async def test_an_expired_lease_is_failed_with_the_reason(
        platform: Platform, client: httpx.AsyncClient, owner: Any) -> None:
    backup_id = await running_backup(platform, client, owner, age=backups.LEASE_SECONDS + 1)
    assert await backups.sweep(platform, no_servers) == [
        f"backup {backup_id} marked failed: its control plane stopped"]
    backup = await platform.db.read(lambda s: s.get_one(Backup, backup_id))
    assert (backup.status, backup.error) == (
        "failed", "the control plane stopped during this backup (its lease expired)")
    assert backup.finished_at is not None
