"""The apps' request metrics and the servers' health as Prometheus series, read from the
stored totals (one row per service and server) and the latest host figures: a scrape costs
two small queries, whatever the traffic."""

from __future__ import annotations

import json
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.models.app_metric_tables import AppMetricTotal, HostStatsLatest
from dockyard.models.app_metrics import LATENCY_BOUNDS_MS, HostStats
from dockyard.models.tables import Project, Server, Service, Workspace

APP_LABELS = ["workspace", "project", "service", "server"]
CLASSES = ("2xx", "3xx", "4xx", "5xx")
Labelled = list[tuple[list[str], AppMetricTotal]]
Hosts = list[tuple[list[str], HostStats]]


async def exposition(p: Platform) -> bytes:
    """The series in Prometheus' text format."""
    totals, hosts = await p.db.read(_read)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(totals, hosts))
    return generate_latest(registry)


async def _read(s: AsyncSession) -> tuple[Labelled, Hosts]:
    query = (select(Workspace.name, Project.name, Service.name, Server.name, AppMetricTotal)
             .join(Service, Service.id == AppMetricTotal.service_id)
             .join(Project, Project.id == Service.project_id)
             .join(Workspace, Workspace.id == Project.workspace_id)
             .join(Server, Server.id == AppMetricTotal.server_id))
    totals = [(list(names), row) for *names, row in await s.execute(query)]
    hosts = (select(Workspace.name, Server.name, HostStatsLatest.stats)
             .join(Server, Server.id == HostStatsLatest.server_id)
             .join(Workspace, Workspace.id == Server.workspace_id))
    return totals, [([workspace, name], HostStats.model_validate_json(stats))
                    for workspace, name, stats in await s.execute(hosts)]


class _Snapshot(Collector):
    def __init__(self, totals: Labelled, hosts: Hosts) -> None:
        self.totals, self.hosts = totals, hosts

    def collect(self) -> Iterator[Metric]:
        yield _requests(self.totals)
        yield _latency(self.totals)
        yield _bytes(self.totals)
        yield from _host_gauges(self.hosts)


def _requests(totals: Labelled) -> Metric:
    family = CounterMetricFamily("dockyard_app_requests", "Requests an app's edge answered.",
                                 labels=[*APP_LABELS, "code"])
    for labels, row in totals:
        for name in CLASSES:
            family.add_metric([*labels, name], getattr(row, f"status_{name}"))
    return family


def _latency(totals: Labelled) -> Metric:
    family = HistogramMetricFamily("dockyard_app_request_duration_seconds",
                                   "Time an app's edge took to answer.", labels=APP_LABELS)
    for labels, row in totals:
        family.add_metric(labels, _buckets(json.loads(row.latency)), None)
    return family


def _buckets(histogram: list[int]) -> list[tuple[str, float]]:
    bounds = [f"{bound / 1000:g}" for bound in LATENCY_BOUNDS_MS] + ["+Inf"]
    seen, cumulative = 0, []
    for bound, count in zip(bounds, histogram, strict=True):
        seen += count
        cumulative.append((bound, float(seen)))
    return cumulative


def _bytes(totals: Labelled) -> Metric:
    family = CounterMetricFamily("dockyard_app_response_bytes", "Bytes an app's edge sent.",
                                 labels=APP_LABELS)
    for labels, row in totals:
        family.add_metric(labels, row.bytes_sent)
    return family


HOST_GAUGES = (
    ("cpu_percent", "CPU used, percent of the whole machine."),
    ("memory_used_bytes", "Memory in use."), ("memory_total_bytes", "Memory installed."),
    ("disk_used_bytes", "Used on the file system of Docker's data."),
    ("disk_total_bytes", "Size of the file system of Docker's data."),
    ("containers_running", "Containers running."), ("containers_stopped", "Containers stopped."),
    ("at", "When the agent sampled these figures (epoch seconds)."))


def _host_gauges(hosts: Hosts) -> Iterator[Metric]:
    for name, doc in HOST_GAUGES:
        family = GaugeMetricFamily(f"dockyard_server_{name}", doc, labels=["workspace", "server"])
        for labels, stats in hosts:
            family.add_metric(labels, getattr(stats, name))
        yield family
