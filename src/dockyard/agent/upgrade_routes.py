"""The agent's upgrade route: a bundle in the body, its version and SHA-256 in the query."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request

from dockyard.agent.release import UPGRADE_PATH
from dockyard.agent.upgrade import Upgrader
from dockyard.models.upgrades import AgentVersion, Sha256, UpgradeAccepted

MAX_BUNDLE_BYTES = 64 * 1024**2  # the bundle is read into memory (it is about 300 kB)
router = APIRouter()


def _upgrader(request: Request) -> Upgrader:
    upgrader: Upgrader = request.app.state.upgrader
    return upgrader


@router.post(UPGRADE_PATH, status_code=202)
async def upgrade_agent(request: Request, background: BackgroundTasks,
                        upgrader: Annotated[Upgrader, Depends(_upgrader)],
                        version: Annotated[AgentVersion, Query()],
                        sha256: Annotated[Sha256, Query()]) -> UpgradeAccepted:
    """Switch to the bundle's release; the agent restarts in place once it has answered."""
    accepted = await upgrader.install(await request.body(), version, sha256)
    background.add_task(upgrader.restart_in_place, accepted.version, accepted.previous)
    return accepted
