"""The traffic watch: whether each server's copy of each app service takes traffic.

Every `traffic_check_seconds` the agent of each server that runs an app service is asked for
its node's health (a request through its edge to each site). A copy is failing when the
agent does not answer, or when its site fails through the edge or is missing. A copy that
fails two checks in a row is marked down (a single blip is not); one that answers again is
marked up at its first good check. Each change is a server event, and DNS follows (the
`on_change` seam: core/dns.py's `sync_all_dns` by default). The count of failed checks lives in this
process: a second replica keeps its own, and a copy is flipped (and its event written) only
by the transaction that still finds it the other way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import datapath
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import NodeHealth
from dockyard.core import agents, dns, fleet
from dockyard.core.platform import Platform
from dockyard.deploy.plan import site_name
from dockyard.models.base import utcnow
from dockyard.models.enums import ServerStatus, ServiceKind
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Placement, Project, Server, ServerEvent, Service

log = logging.getLogger("dockyard.traffic")
OnChange = Callable[[], Awaitable[None]]
CHECK_TIMEOUT = 6.0  # the agent's own probes through the edge take up to 3 s each
FAILURES_TO_MARK_DOWN = 2
CONCURRENCY = 16
UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Copy:
    """A server's copy of an app service, as last recorded."""

    placement_id: str
    service: str  # project/service, as people name it
    site: str  # the node-side site name
    traffic: str


@dataclass(frozen=True)
class Flip:
    """A copy whose traffic changed: `reason` says why it is down ("" when up)."""

    server: str
    service: str
    traffic: str
    reason: str

    @property
    def message(self) -> str:
        if self.traffic == UP:
            return f"{self.service} up again on {self.server}"
        return f"{self.service} down on {self.server}: {self.reason}"


def dns_follows(p: Platform) -> OnChange:
    """What follows a change of traffic or a drain: every domain whose records no longer
    list exactly its servers that take traffic is synced (core/dns.py)."""
    dns_for = dns.default_dns_for(p.settings)

    async def sync() -> None:
        await dns.sync_all_dns(p, dns_for)

    return sync


def _why(exc: Exception) -> str:
    if isinstance(exc, AgentError):
        return f"it answered HTTP {exc.status_code}: {exc.detail}"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    if datapath._refused(exc):  # worded as the agent words its own probes
        return "connection refused"
    return str(exc) or type(exc).__name__


def copy_problem(copy: Copy, health: NodeHealth) -> str:
    """Why the copy cannot take traffic according to its node's health ("" if it can)."""
    for site in health.sites:
        if site.service == copy.site:
            return datapath.site_problem(site) or ""
    edge = [problem for problem in health.problems if problem.startswith("edge nginx")]
    return "; ".join(edge) or f"its site {copy.site} is missing on the node"


async def judge(server: ServerPublic, copies: list[Copy], client_of: fleet.ClientFactory
                ) -> dict[str, str]:
    """Why each copy on the server fails now, by placement id ("" for those that serve)."""
    try:
        async with client_of(server) as client:
            health = await client.node_health()
    except (AgentError, httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        reason = f"agent unreachable ({_why(exc)})"
        return {copy.placement_id: reason for copy in copies}
    return {copy.placement_id: copy_problem(copy, health) for copy in copies}


async def copies_by_server(p: Platform) -> list[tuple[ServerPublic, list[Copy]]]:
    """Every server that is not decommissioned with its copies of app services."""
    query = (select(Server, Placement, Service.name, Project.name)
             .join(Placement, Placement.server_id == Server.id)
             .join(Service, Placement.service_id == Service.id).join(Project)
             .where(Server.status != ServerStatus.DECOMMISSIONED,
                    Service.kind == ServiceKind.APP)
             .order_by(Server.name, Project.name, Service.name))

    async def tx(s: AsyncSession) -> list[tuple[ServerPublic, list[Copy]]]:
        found: dict[str, tuple[ServerPublic, list[Copy]]] = {}
        for server, placed, service, project in await s.execute(query):
            entry = found.setdefault(server.id, (ServerPublic.model_validate(server), []))
            entry[1].append(Copy(placed.id, f"{project}/{service}", site_name(project, service),
                                 placed.traffic))
        return list(found.values())

    return await p.db.read(tx)


async def record_flip(p: Platform, server_id: str, copy: Copy, flip: Flip) -> bool:
    """Flip the copy and write its event, unless it already is so (another replica)."""
    async def tx(s: AsyncSession) -> bool:
        query = select(Placement).where(Placement.id == copy.placement_id).with_for_update()
        row = await s.scalar(query)
        if row is None or row.traffic == flip.traffic:
            return False
        row.traffic, row.traffic_reason, row.traffic_changed_at = (
            flip.traffic, flip.reason, utcnow())
        s.add(ServerEvent(server_id=server_id, kind="traffic", message=flip.message))
        return True

    return await p.db.write(tx)


async def safely(on_change: OnChange) -> None:
    """Run what follows a change; its failure is logged (DNS records its own errors)."""
    try:
        await on_change()
    except Exception:  # the watch and a drain must outlive a DNS provider's failure
        log.exception("bringing DNS in line with traffic failed")


class TrafficWatch:
    """Checks every server's copies; `check_once` is one pass, `run_forever` the loop."""

    def __init__(self, p: Platform, on_change: OnChange | None = None,
                 client_of: fleet.ClientFactory | None = None) -> None:
        self.p, self.on_change, self.client_of = p, on_change or dns_follows(p), client_of
        self.failures: dict[str, int] = {}  # failed checks in a row, by placement id

    async def check_once(self) -> list[Flip]:
        """One pass over every server at once (a few at a time); DNS follows any flip."""
        found = await copies_by_server(self.p)
        if not found:
            return []
        client_of = self.client_of or await checking_clients(self.p)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(server: ServerPublic, copies: list[Copy]) -> list[Flip]:
            async with gate:
                return await self._check_server(server, copies, client_of)

        flips = [f for fs in await asyncio.gather(*(one(*e) for e in found)) for f in fs]
        if flips:
            await safely(self.on_change)
        return flips

    async def _check_server(self, server: ServerPublic, copies: list[Copy],
                            client_of: fleet.ClientFactory) -> list[Flip]:
        reasons = await judge(server, copies, client_of)
        flips = [self._flip_of(server, copy, reasons[copy.placement_id]) for copy in copies]
        return [flip for copy, flip in zip(copies, flips, strict=True)
                if flip is not None and await record_flip(self.p, server.id, copy, flip)]

    def _flip_of(self, server: ServerPublic, copy: Copy, reason: str) -> Flip | None:
        """The change the check asks for, if any: down after enough failures in a row."""
        failed = self.failures[copy.placement_id] = (
            self.failures.get(copy.placement_id, 0) + 1 if reason else 0)
        if reason and copy.traffic == UP and failed >= FAILURES_TO_MARK_DOWN:
            return Flip(server.name, copy.service, DOWN, reason)
        if not reason and copy.traffic == DOWN:
            return Flip(server.name, copy.service, UP, "")
        return None

    async def run_forever(self, interval: float) -> None:
        """A pass every `interval` seconds from the start of the last; one that fails is
        logged, never fatal."""
        while True:
            started = time.monotonic()
            try:
                for flip in await self.check_once():
                    log.info("%s", flip.message)
            except Exception:
                log.exception("checking traffic failed; trying again in %.0f s", interval)
            await asyncio.sleep(max(0.0, started + interval - time.monotonic()))


async def checking_clients(p: Platform) -> fleet.ClientFactory:
    """Clients of every workspace's agents that give up after CHECK_TIMEOUT."""
    secrets = await agents.agent_secrets(p)

    def client_of(server: ServerPublic) -> NodeAgentClient:
        return agents.client_for(server, secrets[server.workspace_id], CHECK_TIMEOUT)

    return client_of
