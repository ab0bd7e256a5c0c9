"""What is wrong right now, read from the database (and the app metrics' queries): each
source returns the conditions it sees, keyed '<kind>:<object id>'. One-shot events (a failed
deployment, a rollback, a failed backup) are conditions with `once` set, found among the
rows that ended within LOOKBACK. Crash-looping: the reconciler recreated a server's
containers CRASH_LOOP_COUNT times within CRASH_LOOP_WINDOW."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics
from dockyard.core.platform import Platform
from dockyard.deploy.disk_floor import Floor, size, under_floor
from dockyard.models.alert_tables import AlertRule
from dockyard.models.app_metrics import HostStats
from dockyard.models.enums import DeploymentStatus, ServerStatus
from dockyard.models.stateful import Backup
from dockyard.models.tables import (
    Deployment,
    Domain,
    Placement,
    Project,
    Server,
    ServerEvent,
    Service,
)

LOOKBACK = timedelta(hours=1)
CRASH_LOOP_COUNT = 3
CRASH_LOOP_WINDOW = timedelta(minutes=15)
EXPIRY_WARNING = timedelta(days=14)
RECREATED = "re-created"  # the reconciler's event when it runs a live release's lost container


@dataclass(frozen=True)
class Condition:
    workspace_id: str
    key: str
    severity: str
    subject: str
    detail: str = ""
    once: bool = False

    @property
    def kind(self) -> str:
        return self.key.partition(":")[0]


@dataclass(frozen=True)
class Source:
    """Finds the conditions of `kinds`; when it fails, alerts of those kinds stay as they are."""

    kinds: tuple[str, ...]
    collect: Callable[[Platform, datetime], Awaitable[list[Condition]]]


def _read(query: Callable[[AsyncSession, datetime], Awaitable[list[Condition]]]
          ) -> Callable[[Platform, datetime], Awaitable[list[Condition]]]:
    async def collect(p: Platform, now: datetime) -> list[Condition]:
        return await p.db.read(lambda s: query(s, now))

    return collect


async def deployments(s: AsyncSession, now: datetime) -> list[Condition]:
    query = (select(Deployment, Project.name, Service.name)
             .join(Service, Service.id == Deployment.service_id).join(Project)
             .where(Deployment.finished_at >= now - LOOKBACK))
    found = []
    for row, project, service in await s.execute(query):
        name = f"{project}/{service}"
        if row.status == DeploymentStatus.FAILED:
            found.append(Condition(row.workspace_id, f"deploy-failed:{row.id}", "critical",
                                   f"deployment {row.id[:8]} of {name} failed", row.error,
                                   once=True))
        elif row.rollback_of and row.status == DeploymentStatus.SUCCEEDED:
            found.append(Condition(row.workspace_id, f"rollback:{row.id}", "warning",
                                   f"{name} was rolled back (deployment {row.id[:8]})",
                                   once=True))
    return found


async def backups(s: AsyncSession, now: datetime) -> list[Condition]:
    query = select(Backup, Project.name).join(Project, Project.id == Backup.project_id).where(
        Backup.status == "failed", Backup.finished_at >= now - LOOKBACK)
    return [Condition(row.workspace_id, f"backup-failed:{row.id}", "critical",
                      f"backup {row.id[:8]} of {project}/{row.service_name} failed", row.error,
                      once=True) for row, project in await s.execute(query)]


async def services_down(s: AsyncSession, now: datetime) -> list[Condition]:
    """Services whose every copy the traffic watch marked down."""
    down = func.sum(case((Placement.traffic == "down", 1), else_=0))
    query = (select(Service.id, Service.workspace_id, Project.name, Service.name,
                    func.max(Placement.traffic_reason))
             .join(Placement, Placement.service_id == Service.id).join(Project)
             .group_by(Service.id, Service.workspace_id, Project.name, Service.name)
             .having(down == func.count(Placement.id)))
    return [Condition(workspace, f"service-down:{id_}", "critical",
                      f"{project}/{service} is down on every server", reason or "")
            for id_, workspace, project, service, reason in await s.execute(query)]


async def servers_unreachable(s: AsyncSession, now: datetime) -> list[Condition]:
    query = select(Server).where(Server.status == ServerStatus.UNREACHABLE)
    return [Condition(row.workspace_id, f"server-unreachable:{row.id}", "critical",
                      f"server {row.name} is unreachable", row.status_reason)
            for row in await s.scalars(query)]


async def crash_loops(s: AsyncSession, now: datetime) -> list[Condition]:
    query = (select(Server.id, Server.workspace_id, Server.name, func.count(ServerEvent.id))
             .join(ServerEvent, ServerEvent.server_id == Server.id)
             .where(ServerEvent.kind == RECREATED, ServerEvent.time >= now - CRASH_LOOP_WINDOW)
             .group_by(Server.id, Server.workspace_id, Server.name)
             .having(func.count(ServerEvent.id) >= CRASH_LOOP_COUNT))
    minutes = int(CRASH_LOOP_WINDOW.total_seconds() // 60)
    return [Condition(workspace, f"crash-loop:{id_}", "warning",
                      f"containers on server {name} keep crashing",
                      f"recreated {count} times in the last {minutes} minutes")
            for id_, workspace, name, count in await s.execute(query)]


async def certificates(s: AsyncSession, now: datetime) -> list[Condition]:
    found = []
    for row in await s.scalars(select(Domain).where(Domain.tls != "none")):
        if row.certificate_status == "failed" or row.certificate_error:
            found.append(Condition(row.workspace_id, f"certificate-failed:{row.id}", "critical",
                                   f"the certificate of {row.hostname} could not be renewed",
                                   row.certificate_error))
        elif row.certificate_expires_at and row.certificate_expires_at < now + EXPIRY_WARNING:
            found.append(Condition(row.workspace_id, f"certificate-expiring:{row.id}",
                                   "warning", f"the certificate of {row.hostname} expires "
                                   f"{row.certificate_expires_at:%Y-%m-%d %H:%M} UTC"))
    return found


async def disks(p: Platform, now: datetime) -> list[Condition]:
    """A server whose fullest file system is past `disk_alert_fraction` used; critical once
    one is under the disk floor, as deploys to that server are then refused."""
    stats = await app_metrics.latest_host_stats(p)
    limit, floor = p.settings.disk_alert_fraction, Floor.of(p.settings)
    full = {id_: host for id_, host in stats.items() if host.fullest_used_fraction >= limit
            or under_floor(host.file_systems, floor)}
    servers = await p.db.read(lambda s: _servers(s, list(full)))
    return [_disk(row, full[row.id], limit, floor) for row in servers]


def _disk(row: Server, host: HostStats, limit: float, floor: Floor) -> Condition:
    title = f"the disk of server {row.name} is {host.fullest_used_fraction:.0%} full"
    under = under_floor(host.file_systems, floor)
    if under is None:
        return Condition(row.workspace_id, f"disk-full:{row.id}", "warning", title,
                         f"alert threshold {limit:.0%}")
    return Condition(row.workspace_id, f"disk-full:{row.id}", "critical", title,
                     f"{size(under.free_bytes)} free on {under.path}, under the floor of "
                     f"{size(floor.bytes_for(under))}: deploys to it are refused")


async def _servers(s: AsyncSession, ids: list[str]) -> list[Server]:
    return list(await s.scalars(select(Server).where(Server.id.in_(ids)))) if ids else []


async def traffic(p: Platform, now: datetime) -> list[Condition]:
    found = []
    for rule, name in await p.db.read(_rules):
        summary = await app_metrics.service_traffic(p, rule.service_id,
                                                    timedelta(seconds=rule.window_seconds))
        found += _over(rule, name, summary)
    return found


async def _rules(s: AsyncSession) -> list[tuple[AlertRule, str]]:
    query = (select(AlertRule, Project.name, Service.name)
             .join(Service, Service.id == AlertRule.service_id).join(Project))
    return [(rule, f"{project}/{service}") for rule, project, service in await s.execute(query)]


def _over(rule: AlertRule, name: str, summary: app_metrics.TrafficSummary) -> list[Condition]:
    found, minutes = [], f"over the last {rule.window_seconds // 60} min"
    if rule.max_5xx_rate is not None and summary.requests and (
            summary.error_rate > rule.max_5xx_rate):
        found.append(Condition(rule.workspace_id, f"5xx-rate:{rule.service_id}", "warning",
                               f"{name} answers {summary.error_rate:.1%} of requests with 5xx",
                               f"threshold {rule.max_5xx_rate:.1%}, {minutes}"))
    if rule.max_p95_ms is not None and summary.p95_ms is not None and (
            summary.p95_ms > rule.max_p95_ms):
        found.append(Condition(rule.workspace_id, f"p95:{rule.service_id}", "warning",
                               f"{name} p95 latency is {summary.p95_ms:.0f} ms",
                               f"threshold {rule.max_p95_ms} ms, {minutes}"))
    return found


SOURCES = (
    Source(("deploy-failed", "rollback"), _read(deployments)),
    Source(("backup-failed",), _read(backups)),
    Source(("service-down",), _read(services_down)),
    Source(("server-unreachable",), _read(servers_unreachable)),
    Source(("crash-loop",), _read(crash_loops)),
    Source(("certificate-failed", "certificate-expiring"), _read(certificates)),
    Source(("disk-full",), disks),
    Source(("5xx-rate", "p95"), traffic),
)
