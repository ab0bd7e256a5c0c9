"""The agent's upgrade route: a bundle in the body, its version and SHA-256 in the query."""

from __future__ import annotations

from dockyard.agent.parts import Parts
from dockyard.agent.release import UPGRADE_PATH
from dockyard.agent.web import Call, Param, Routes, query
from dockyard.models.upgrades import AgentVersion, Sha256, UpgradeAccepted

MAX_BUNDLE_BYTES = 64 * 1024**2  # the bundle is read into memory (it is about 300 kB)
VERSION: Param[str] = query("version", AgentVersion)
SHA256: Param[str] = query("sha256", Sha256)
routes: Routes[Parts] = Routes()


@routes.post(UPGRADE_PATH, status=202, params=(VERSION, SHA256))
async def upgrade_agent(call: Call[Parts]) -> UpgradeAccepted:
    """Switch to the bundle's release; the agent restarts in place once it has answered."""
    upgrader = call.parts.upgrader
    accepted = await upgrader.install(await call.request.body(), call[VERSION], call[SHA256])
    call.background.add_task(upgrader.restart_in_place, accepted.version, accepted.previous)
    return accepted
