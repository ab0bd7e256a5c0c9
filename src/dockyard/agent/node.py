"""What the agent does on its node; routes call exactly one method of `Node` each."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import IO, Any

from anyio import to_thread

from dockyard.agent import commands as cmd
from dockyard.agent import datapath, metadata_block
from dockyard.agent import ports as host_ports
from dockyard.agent import probe as http_probe
from dockyard.agent.buildconfig import BuildOptions
from dockyard.agent.certs import AcmeWebroot, CertificateStore, checked
from dockyard.agent.firewall import Firewall, FirewallError
from dockyard.agent.hoststats import DiskWatch
from dockyard.agent.logbuffer import DEFAULT_LOG_BUFFER_BYTES, LogBuffer, LogPage
from dockyard.agent.models import (
    AgentInfo,
    CertificateInstall,
    ContainerHealth,
    ContainerSpec,
    ContainerSummary,
    FirewallRule,
    ImageRef,
    ImageSummary,
    InstalledCertificate,
    NodeHealth,
    ProbeRequest,
    ProbeResult,
    PruneRequest,
    PruneResult,
    PublishedPort,
    Site,
    TagRequest,
    VolumeRequest,
)
from dockyard.agent.proxy import Nginx, NginxInstance
from dockyard.agent.release import code_version
from dockyard.agent.runtime import DockerRuntime, EngineError
from dockyard.agent.state import StateFile
from dockyard.agent.supervise import EventLog
from dockyard.kernel.errors import InvalidInput, NotFound
from dockyard.kernel.named_locks import NamedLocks

log = logging.getLogger("dockyard.agent")


def _read_first_number(path: str, field: int = 0) -> float:
    with open(path) as handle:
        return float(handle.read().split()[field])


def _memory_bytes() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def published_ports(entries: list[dict[str, Any]]) -> list[PublishedPort]:
    """The `Ports` of Docker's container list that are published on the host."""
    found = [PublishedPort(container_port=e["PrivatePort"], host_port=e["PublicPort"],
                           host_ip=e.get("IP", "")) for e in entries if e.get("PublicPort")]
    return sorted(found, key=lambda p: (p.container_port, p.host_ip, p.host_port))


def summarize_container(raw: dict[str, Any]) -> ContainerSummary:
    names = raw.get("Names") or ["/"]
    return ContainerSummary(
        id=raw["Id"], name=names[0].lstrip("/"), image=raw.get("Image", ""),
        state=raw.get("State", ""), status=raw.get("Status", ""), labels=raw.get("Labels") or {},
        ports=published_ports(raw.get("Ports") or []),
    )


def summarize_image(raw: dict[str, Any]) -> ImageSummary:
    tags = [t for t in raw.get("RepoTags") or [] if t != "<none>:<none>"]
    return ImageSummary(id=raw["Id"], tags=tags, created=raw.get("Created", 0),
                        size=raw.get("Size", 0))


def container_health(raw: dict[str, Any]) -> ContainerHealth:
    state = raw.get("State") or {}
    health = state.get("Health") or {}
    return ContainerHealth(name=raw["Name"].lstrip("/"), state=state.get("Status", ""),
                           health=health.get("Status"),
                           failing_streak=health.get("FailingStreak", 0))


async def _unless_gone(call: Awaitable[Any]) -> None:
    try:
        await call
    except EngineError as exc:
        if exc.status_code != 404:
            raise


class Node:
    def __init__(self, state_dir: Path, certs_dir: Path, runtime: DockerRuntime,
                 nginx: Nginx, state_file: StateFile,
                 log_buffer_bytes: int = DEFAULT_LOG_BUFFER_BYTES,
                 firewall: Firewall | None = None, block_metadata: bool = False) -> None:
        self.state_dir = state_dir
        self.certs_dir = certs_dir
        self.runtime = runtime
        self.nginx = nginx
        self.state_file = state_file
        self.state = state_file.load()
        self._lock = asyncio.Lock()
        self._making = NamedLocks()  # a container's name, while it is being made
        self.log_buffer = LogBuffer(state_dir / "logs", log_buffer_bytes)
        self._log_lock = asyncio.Lock()
        self.events = EventLog(state_dir / "supervision-events.json")
        self.firewall = firewall or Firewall()
        self.block_metadata = block_metadata
        self.start_problems: list[str] = []  # what the last start could not put in place
        self.certificates = CertificateStore(certs_dir, nginx.layout.tls)
        self.acme = AcmeWebroot(nginx.layout.acme)
        self.disks = DiskWatch(runtime, state_dir)

    async def info(self) -> AgentInfo:
        try:
            version = (await self.runtime.run(cmd.engine_version()))["Version"]
        except EngineError:
            version = "unreachable"
        return AgentInfo(
            agent_version=code_version(), docker_version=version, cpus=os.cpu_count() or 1,
            memory_bytes=_memory_bytes(), disk_free_bytes=shutil.disk_usage(self.state_dir).free,
            load=os.getloadavg(), uptime_seconds=_read_first_number("/proc/uptime"),
        )

    # Images

    def build(self, context: IO[bytes], target: ImageRef, dockerfile: str,
              options: BuildOptions = BuildOptions()) -> AsyncIterator[Any]:
        return self.runtime.stream(cmd.build_image(context, target, dockerfile, options))

    async def import_rootfs(self, rootfs: IO[bytes], target: ImageRef) -> None:
        chunks = iter(lambda: rootfs.read(1024 * 1024), b"")
        await self.runtime.run(cmd.import_image(chunks, target))

    def pull(self, ref: ImageRef) -> AsyncIterator[Any]:
        return self.runtime.stream(cmd.pull_image(ref))

    def push(self, ref: ImageRef) -> AsyncIterator[Any]:
        return self.runtime.stream(cmd.push_image(ref))

    async def tag(self, request: TagRequest) -> None:
        await self.runtime.run(cmd.tag_image(request.source, request.target))

    async def images(self) -> list[ImageSummary]:
        return [summarize_image(raw) for raw in await self.runtime.run(cmd.list_images())]

    async def remove_image(self, ref: ImageRef) -> None:
        await self.runtime.run(cmd.remove_image(ref.reference))

    async def prune(self, request: PruneRequest) -> PruneResult:
        images = await self.images()
        doomed = (cmd.deploy_tags_to_remove(images, request.keep) if request.repository is None
                  else cmd.deploy_tags_outside(images, request.repository, set(request.retain)))
        result = PruneResult(removed=[], failed={})
        for reference in doomed:
            try:
                await self.runtime.run(cmd.remove_image(reference))
                result.removed.append(reference)
            except EngineError as exc:  # in use by a container: keep it, say why
                result.failed[reference] = exc.message
        await self.runtime.run(cmd.prune_dangling_images(request.dangling_max_age_seconds))
        return result

    # Containers

    async def run_container(self, spec: ContainerSpec) -> ContainerSummary:
        """Choose the free host ports asked for and keep the concrete spec in the desired
        state before creating the container, so that no other spec gets those ports and a
        restore reuses them; forget it again if Docker refuses. Asked again for a container
        it already made from the same spec (a repeated call, or one at the same time), it only
        makes sure it runs."""
        async with self._making.holding(spec.name):
            return await self._make_container(spec)

    async def _make_container(self, spec: ContainerSpec) -> ContainerSummary:
        again = await self._already_made(spec)
        if again is not None:
            return again
        async with self._lock:
            spec = self._with_free_ports(spec)
            previous = self.state.containers.get(spec.name)
            self._keep_container(spec.name, spec)
        try:
            await self.runtime.run_all(cmd.run_container(spec, self.runtime.container_logs))
        except EngineError:
            async with self._lock:
                self._keep_container(spec.name, previous)
            raise
        return await self.container(spec.name)

    async def _already_made(self, spec: ContainerSpec) -> ContainerSummary | None:
        kept = self.state.containers.get(spec.name)
        if kept is None or not host_ports.same_request(spec, kept):
            return None
        try:
            found = await self.container(spec.name)
        except NotFound:
            return None
        if found.state != "running":
            await self.runtime.run(cmd.start_container(spec.name))
        return await self.container(spec.name)

    def _with_free_ports(self, spec: ContainerSpec) -> ContainerSpec:
        taken = host_ports.taken_ports(self.state.containers.values())
        try:
            return host_ports.with_free_ports(spec, taken)
        except OSError as exc:
            raise InvalidInput(f"could not choose a free host port: {exc}") from exc

    def _keep_container(self, name: str, spec: ContainerSpec | None) -> None:
        if spec is None:
            self.state.containers.pop(name, None)
        else:
            self.state.containers[name] = spec
        self.state_file.save(self.state)

    async def container(self, name: str) -> ContainerSummary:
        found = await self.containers({"dockyard.managed": "true"})
        for summary in found:
            if summary.name == name:
                return summary
        raise NotFound("container", name)

    async def stop_container(self, name: str, grace_seconds: int) -> None:
        """Stop and forget a container; one that is gone already is no error."""
        await self._forget_container(name)
        await _unless_gone(self.runtime.run(cmd.stop_container(name, grace_seconds)))

    async def remove_container(self, name: str) -> None:
        """Remove a container, its last lines kept; one that is gone already is no error."""
        await self._forget_container(name)
        await self._keep_last_logs(name)
        await _unless_gone(self.runtime.run(cmd.remove_container(name)))

    async def _keep_last_logs(self, name: str) -> None:
        """Copy a container's last lines before it goes; a failure never stops the removal."""
        async with self._log_lock:
            try:
                raw = await self.runtime.run(cmd.EngineCall("inspect_container",
                                                            {"container": name}))
                labels = raw.get("Config", {}).get("Labels") or {}
                await self.log_buffer.sync_container(self.runtime, name, labels)
            except Exception as exc:  # the removal matters more than its last lines
                log.warning("the last log lines of %s were not kept: %s", name, exc)

    async def log_page(self, after: int, limit: int) -> LogPage:
        """Lines after the `after` sequence number, copied from Docker first when the
        reader has every line the buffer holds."""
        async with self._log_lock:
            if after >= self.log_buffer.newest_seq:
                await self.log_buffer.sync(self.runtime)
            return self.log_buffer.read(after, limit)

    async def _forget_container(self, name: str) -> None:
        async with self._lock:
            if self.state.containers.pop(name, None) is not None:
                self.state_file.save(self.state)

    async def containers(self, labels: dict[str, str]) -> list[ContainerSummary]:
        selector = {**labels, cmd.MANAGED_LABEL: "true"}
        found = await self.runtime.run(cmd.list_containers(selector))
        return [summarize_container(raw) for raw in found]

    async def probe(self, request: ProbeRequest) -> ProbeResult:
        return await http_probe.probe(request)

    async def health(self, name: str) -> ContainerHealth:
        return container_health(await self.runtime.run(cmd.inspect_container(name)))

    def logs(self, name: str, *, follow: bool, tail: int) -> AsyncIterator[bytes]:
        return self.runtime.stream(cmd.container_logs(name, follow=follow, tail=tail))

    # Volumes

    async def create_volume(self, request: VolumeRequest) -> None:
        await self.runtime.run(cmd.create_volume(request.name, request.service))

    async def volumes(self, service: str) -> list[str]:
        answer = await self.runtime.run(cmd.list_volumes(service))
        return sorted(v["Name"] for v in answer.get("Volumes") or [])

    async def volume_sizes(self, service: str) -> dict[str, int]:
        """The bytes each of `service`'s volumes holds (-1 where Docker does not know)."""
        names = set(await self.volumes(service))
        usage = await self.runtime.run(cmd.disk_usage())
        return {v["Name"]: (v.get("UsageData") or {}).get("Size", -1)
                for v in usage.get("Volumes") or [] if v["Name"] in names}

    async def remove_volume(self, name: str) -> None:
        await self.runtime.run(cmd.remove_volume(name))

    # Sites

    async def apply_site(self, site: Site) -> None:
        """The site is kept last: a name another site also claims leads to it."""
        async with self._lock:
            sites = [*(s for s in self.sites() if s.service != site.service), site]
            await to_thread.run_sync(self.nginx.apply, site, sites)
            self.state.sites.pop(site.service, None)
            self.state.sites[site.service] = site
            self.state_file.save(self.state)

    async def remove_site(self, service: str) -> None:
        async with self._lock:
            if service not in self.state.sites:
                raise NotFound("site", service)
            rest = [site for site in self.sites() if site.service != service]
            await to_thread.run_sync(self.nginx.remove, service, rest)
            del self.state.sites[service]
            self.state_file.save(self.state)

    def sites(self) -> list[Site]:
        return list(self.state.sites.values())

    # Certificates and ACME challenges: the edge serves them from the next request

    async def install_certificate(self, hostname: str, install: CertificateInstall) -> None:
        certificate = checked(hostname, install)
        async with self._lock:
            await to_thread.run_sync(self.certificates.install, hostname, certificate)

    async def remove_certificate(self, hostname: str) -> None:
        async with self._lock:
            await to_thread.run_sync(self.certificates.remove, hostname)

    async def installed_certificates(self) -> list[InstalledCertificate]:
        return await to_thread.run_sync(self.certificates.installed)

    async def put_acme_challenge(self, token: str, key_authorization: str) -> None:
        await to_thread.run_sync(self.acme.put, token, key_authorization)

    async def remove_acme_challenge(self, token: str) -> None:
        await to_thread.run_sync(self.acme.remove, token)

    # Who may reach the ports published here

    async def apply_firewall_rule(self, rule: FirewallRule) -> None:
        async with self._lock:
            await to_thread.run_sync(self.firewall.apply, rule)
            self.state.firewall[rule.name] = rule
            self.state_file.save(self.state)

    async def remove_firewall_rule(self, name: str) -> None:
        """Remove a rule set; one that is gone already is no error."""
        async with self._lock:
            await to_thread.run_sync(self.firewall.remove, name)
            if self.state.firewall.pop(name, None) is not None:
                self.state_file.save(self.state)

    def firewall_rules(self) -> list[FirewallRule]:
        return list(self.state.firewall.values())

    # Supervision and health from the data path

    def nginx_layers(self) -> dict[str, NginxInstance]:
        """Both layers by name, the switch first: its sockets must exist when the edge serves."""
        return {"switch nginx": self.nginx.switch, "edge nginx": self.nginx.edge}

    async def revive_nginx(self, instance: NginxInstance) -> bool:
        """Start a dead layer again from the desired state (no site change runs meanwhile);
        whether it had to."""
        async with self._lock:
            if instance.running_pid() is not None:
                return False
            await to_thread.run_sync(instance.revive, self.sites())
            return True

    async def node_health(self) -> NodeHealth:
        down = [name for name, layer in self.nginx_layers().items()
                if layer.running_pid() is None]
        health = await datapath.node_health(self.nginx.layout.http_port, self.sites(), down,
                                            self.events.recent())
        return health.model_copy(update={"problems": [*self.start_problems, *health.problems]})

    # Restore after a restart

    async def restore(self) -> None:
        """Bring the firewall, nginx and the owned containers back to the desired state,
        without help; the firewall first, so no port is published unguarded."""
        async with self._lock:
            await to_thread.run_sync(self._restore_firewall)
            await to_thread.run_sync(self._restore_nginx)
        for spec in list(self.state.containers.values()):
            try:
                await self._restore_container(spec)
            except EngineError as exc:
                log.error("could not restore container %s: %s", spec.name, exc.message)

    def _restore_firewall(self) -> None:
        problem = metadata_block.block(self.firewall) if self.block_metadata else None
        self.start_problems = [problem] if problem else []
        if problem:
            log.error("%s", problem)
        for rule in self.state.firewall.values():
            try:
                self.firewall.apply(rule)
            except FirewallError as exc:
                log.error("could not restore firewall rule %s: %s", rule.name, exc.message)

    def _restore_nginx(self) -> None:
        self.certificates.publish_all()
        self.nginx.restore(self.sites())

    async def _restore_container(self, spec: ContainerSpec) -> None:
        try:
            current = await self.health(spec.name)
        except EngineError as exc:
            if exc.status_code != 404:
                raise
            log.info("recreating container %s", spec.name)
            await self.runtime.run_all(cmd.run_container(spec, self.runtime.container_logs))
            return
        if current.state != "running":
            log.info("starting container %s", spec.name)
            await self.runtime.run(cmd.start_container(spec.name))
