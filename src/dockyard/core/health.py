"""Liveness and readiness of the control plane."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard import __version__
from dockyard.core.platform import Platform
from dockyard.models.schemas import Health


async def check(p: Platform) -> Health:
    async def ping(s: AsyncSession) -> None:
        await s.execute(text("SELECT 1"))

    try:
        await p.db.read(ping)
    except Exception:  # any failure to reach the database is what this reports
        return Health(status="degraded", version=__version__, database="unreachable")
    return Health(status="ok", version=__version__, database="ok")
