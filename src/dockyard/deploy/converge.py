"""The reconciler's decision, as a pure function: what one server should run (each service's
releases and its deployments in flight) and what runs there (the agent's containers and
sites) in; the corrections to make and the drift left to show out.

Rules: a service with a deployment in flight is left alone (the engine owns its containers
and site until it ends); containers of no service this workspace knows, and one-off runs,
are never touched; strays go only once the reconciler has seen them for the grace period;
volumes are never touched."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from dockyard.agent.commands import SERVICE_LABEL
from dockyard.agent.models import ContainerSpec, ContainerSummary, Site
from dockyard.agent.processes import ONE_OFF_LABEL
from dockyard.deploy import injection, plan
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.enums import DeploymentStatus
from dockyard.models.reconcile import Drift


@dataclass(frozen=True)
class Release:
    """A succeeded deployment of a service, with its variables (decrypted)."""

    id: str
    plan: DeploymentPlan
    env: dict[str, str]


@dataclass(frozen=True)
class ServiceWanted:
    """One service of the server's workspace: `name` is `project/service`, `site` its
    node-side name, `releases` its succeeded deployments newest first."""

    name: str
    site: str
    releases: tuple[Release, ...] = ()
    in_flight: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()  # every name it has now (default host and domains)


@dataclass(frozen=True)
class Wanted:
    """What the control plane says about one server; `statuses` of the deployments named
    by the containers found there, to say what a stray is."""

    server_id: str
    services: tuple[ServiceWanted, ...]
    statuses: dict[str, DeploymentStatus]


@dataclass(frozen=True)
class Found:
    containers: tuple[ContainerSummary, ...]
    sites: tuple[Site, ...]


@dataclass(frozen=True)
class Grace:
    """When strays may go: seen for `period`, counted from `first_seen` (by container
    name; those not in it are seen for the first time `now`)."""

    now: datetime
    period: timedelta
    first_seen: dict[str, datetime]

    def since(self, name: str) -> datetime:
        return self.first_seen.get(name, self.now)

    def over(self, name: str) -> bool:
        return self.now - self.since(name) >= self.period


@dataclass(frozen=True)
class Correction:
    """`subject` is the container or site; `past` and `present` the verb, `what` the rest of
    the sentence: "removed stray container X of failed deployment Y"."""

    subject: str
    past: str
    present: str
    what: str

    @property
    def message(self) -> str:
        return f"{self.past} {self.what}"

    def failure(self, detail: str) -> str:
        return f"could not {self.present} {self.what}: {detail}"


@dataclass(frozen=True)
class RemoveStray(Correction):
    pass


@dataclass(frozen=True)
class RecreateMissing(Correction):
    spec: ContainerSpec | None = None


@dataclass(frozen=True)
class RestoreSite(Correction):
    site: Site | None = None


@dataclass(frozen=True)
class RemoveSite(Correction):
    pass


@dataclass(frozen=True)
class Decision:
    corrections: tuple[Correction, ...]
    drift: tuple[Drift, ...]


@dataclass(frozen=True)
class Expected:
    """A container the live release runs on this server."""

    release: Release
    process: plan.Process
    spec: ContainerSpec


def decide(wanted: Wanted, found: Found, grace: Grace) -> Decision:
    """The corrections for every service, in the order given: missing containers first,
    then its site, then its strays."""
    flying = {d for service in wanted.services for d in service.in_flight}
    sites = {site.service: site for site in found.sites}
    corrections: list[Correction] = []
    drift: list[Drift] = []
    for service in wanted.services:
        if service.in_flight:
            continue
        mine = _containers_of(service, found.containers, flying)
        expected = list(expected_containers(service, wanted.server_id))
        corrections += _service_fixes(service, expected, mine, sites.get(service.site))
        strays, pending = _strays(expected, mine, wanted.statuses, grace)
        corrections += strays + _orphan_site(service, expected, mine, strays,
                                             sites.get(service.site))
        drift += pending
    return Decision(tuple(corrections), tuple(drift))


def _containers_of(service: ServiceWanted, containers: Iterable[ContainerSummary],
                   flying: set[str]) -> list[ContainerSummary]:
    """The service's containers the reconciler may judge: no one-off run, nothing of a
    deployment in flight."""
    return [c for c in containers if c.labels.get(SERVICE_LABEL) == service.site
            and ONE_OFF_LABEL not in c.labels
            and c.labels.get(plan.DEPLOYMENT_LABEL) not in flying]


def live_owners(releases: tuple[Release, ...]) -> list[tuple[Release, str]]:
    """Each process type of the live release, with the release that last rolled it out (a
    restart of one type is a release of that type only)."""
    full = next((r for r in releases if r.plan.only is None), None)
    if full is None:
        return []
    return [(next(r for r in releases if r.plan.only in (None, kind)), kind)
            for kind in full.plan.processes.types()]


def expected_containers(service: ServiceWanted, server_id: str) -> Iterator[Expected]:
    for owner, kind in live_owners(service.releases):
        if server_id not in owner.plan.servers:
            continue
        p = owner.plan
        env = plan.release_env(owner.env, p.params, owner.id, service.name)
        image = plan.parse_image(p.image)
        for process in plan.processes_of(p.processes, p.params, kind):
            spec = plan.container_spec(service.site, owner.id, image, env, p.params, process,
                                       injection.extra_hosts(p.links, server_id))
            yield Expected(owner, process, spec)


def _service_fixes(service: ServiceWanted, expected: list[Expected],
                   containers: list[ContainerSummary], site: Site | None) -> list[Correction]:
    present = {c.name: c for c in containers}
    missing: list[Correction] = [_recreate(e) for e in expected if e.spec.name not in present]
    if missing:
        return missing  # the site follows once they run (the loop decides again)
    return _site_fix(service, [e for e in expected if e.process.serves_http], present, site)


def _recreate(e: Expected) -> RecreateMissing:
    what = (f"missing container {e.spec.name} ({e.process.kind}.{e.process.replica}) of live "
            f"release {e.release.id[:8]}")
    return RecreateMissing(e.spec.name, "re-created", "re-create", what, spec=e.spec)


def _site_fix(service: ServiceWanted, web: list[Expected],
              present: dict[str, ContainerSummary], site: Site | None) -> list[Correction]:
    """The site of the live web containers' ports, when it is missing or points elsewhere."""
    ports = sorted(port.host_port for e in web if present[e.spec.name].state == "running"
                   for port in present[e.spec.name].ports)
    current = sorted(u.port for u in site.upstreams) if site else None
    release = web[0].release if web else None
    if not ports or release is None:
        return []
    hosts = list(service.hosts or release.plan.hosts)
    if current == ports:
        return _rename_fix(service, site, list(service.hosts))
    live = f"{_ports(ports)} of live release {release.id[:8]}"
    restored = plan.site_for(service.site, hosts, ports)
    if current is None:
        return [RestoreSite(service.site, "restored", "restore",
                            f"missing site {service.site} at {live}", site=restored)]
    return [RestoreSite(service.site, "re-pointed", "re-point",
                        f"site {service.site} at {live} (it pointed at {_ports(current)})",
                        site=restored)]


def _rename_fix(service: ServiceWanted, site: Site | None, hosts: list[str]
                ) -> list[Correction]:
    """The site with the service's names of today (a domain added or removed while the
    server was away)."""
    if site is None or not hosts or site.server_names == hosts:
        return []
    return [RestoreSite(service.site, "renamed", "rename",
                        f"site {service.site} to {', '.join(hosts)}",
                        site=site.model_copy(update={"server_names": hosts}))]


def _orphan_site(service: ServiceWanted, expected: list[Expected],
                 containers: list[ContainerSummary], removals: list[Correction],
                 site: Site | None) -> list[Correction]:
    """The site of a service that no longer serves here, once its last container goes."""
    gone = {r.subject for r in removals}
    if site is None or any(e.process.serves_http for e in expected) or any(
            c.name not in gone for c in containers):
        return []
    return [RemoveSite(service.site, "removed", "remove",
                       f"site {service.site}: no live release of {service.name} runs here")]


def _ports(ports: list[int]) -> str:
    return f"port{'s' if len(ports) > 1 else ''} {', '.join(map(str, ports))}"


def _strays(expected: list[Expected], containers: list[ContainerSummary],
            statuses: dict[str, DeploymentStatus], grace: Grace
            ) -> tuple[list[Correction], list[Drift]]:
    """Strays past their grace period to remove; the others as drift."""
    names = {e.spec.name for e in expected}
    removals: list[Correction] = []
    pending: list[Drift] = []
    for container in sorted(containers, key=lambda c: c.name):
        if container.name in names:
            continue
        what = f"stray container {container.name} of {_origin(container, statuses)}"
        if grace.over(container.name):
            removals.append(RemoveStray(container.name, "removed", "remove", what))
        else:
            pending.append(Drift(subject=container.name, since=grace.since(container.name),
                                 message=f"{what}, removed after the grace period"))
    return removals, pending


def _origin(container: ContainerSummary, statuses: dict[str, DeploymentStatus]) -> str:
    deployment = container.labels.get(plan.DEPLOYMENT_LABEL, "")
    status = statuses.get(deployment)
    if status is None:
        return f"unknown deployment {deployment[:8] or '(none)'}"
    if status is DeploymentStatus.SUCCEEDED:
        return f"old release {deployment[:8]}"
    return f"{status.value} deployment {deployment[:8]}"
