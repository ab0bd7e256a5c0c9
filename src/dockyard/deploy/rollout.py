"""Putting a release on its servers: start beside the old one, health check, switch, and
later drain and stop the old one; or put everything back as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from dockyard.agent.client import AgentError
from dockyard.agent.models import ContainerSummary
from dockyard.agent.patience import AgentAway
from dockyard.deploy import injection, plan
from dockyard.deploy.run import DeployFailed, Run, Target, describe
from dockyard.models.deployment_plan import Phase, Step, StepState

LOG_TAIL = 20


async def in_parallel(run: Run, work: Callable[[Target], Awaitable[None]]) -> list[str]:
    """Run `work` on every target, at most `parallelism` at once; the failures' reasons."""
    gate = asyncio.Semaphore(run.params.parallelism)

    async def guarded(target: Target) -> None:
        async with gate:
            await work(target)

    results = await asyncio.gather(*(guarded(t) for t in run.targets), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    return [_reason(run, t, r) for t, r in zip(run.targets, results, strict=True)
            if isinstance(r, Exception)]


def _reason(run: Run, target: Target, error: Exception) -> str:
    step = run.progress.servers.get(target.id)
    at = f" (step {step.step.value})" if isinstance(error, AgentAway) and step else ""
    return f"{target.name}{at}: {describe(error)}"


async def roll_out(run: Run) -> None:
    """Phase one on every server; the first failure stops the others before they switch."""
    failures = await in_parallel(run, lambda target: _server_up(run, target))
    if failures:
        raise DeployFailed("; ".join(failures))


async def _server_up(run: Run, target: Target) -> None:
    try:
        await pull(run, target)
        wanted = plan.processes_of(run.plan.processes, run.params, run.plan.only)
        ports = [await _start_web(run, target, p) for p in wanted if p.serves_http]
        for process in (p for p in wanted if not p.serves_http):
            await _start_worker(run, target, process)
        if run.aborted.is_set():
            raise DeployFailed("stopped before switching because another server failed")
        if ports:
            await _switch(run, target, ports)
    except Exception:
        run.aborted.set()
        raise


async def _switch(run: Run, target: Target, ports: list[int]) -> None:
    await run.step(target, Step.SWITCH, StepState.STARTED, "switching traffic")
    await target.client.apply_site(plan.site_for(run.site, run.hosts, ports))
    await run.step(target, Step.SWITCH, StepState.DONE, "now serving the new release")


async def pull(run: Run, target: Target) -> None:
    await run.step(target, Step.PULL, StepState.STARTED, f"pulling {run.image.reference}")
    try:
        async for _ in target.client.pull(run.image):
            pass
    except AgentError as exc:
        raise DeployFailed(f"pull failed: {exc.detail}") from exc
    await run.step(target, Step.PULL, StepState.DONE, "image pulled")


def release_env(run: Run) -> dict[str, str]:
    return plan.release_env(run.env, run.params, run.deployment_id,
                            f"{run.project}/{run.service}")


async def _start(run: Run, target: Target, process: plan.Process) -> ContainerSummary:
    """A container of `process`, started afresh; DeployFailed if it stopped at once."""
    spec = plan.container_spec(run.site, run.deployment_id, run.image, release_env(run),
                               run.params, process,
                               injection.extra_hosts(run.plan.links, target.id))
    await run.step(target, Step.START, StepState.STARTED,
                   f"starting {process.kind}.{process.replica} beside the old release")
    await _remove_quietly(target, spec.name)
    summary = await target.client.run_container(spec)
    # Docker publishes no port for a container that already exited
    if summary.state not in ("running", "created") or (process.serves_http and not summary.ports):
        raise DeployFailed(f"{process.kind}.{process.replica} ({spec.name}) stopped as soon as "
                           f"it started ({summary.state}); last log lines:\n"
                           f"{await _log_tail(target, spec.name)}")
    return summary


async def _start_web(run: Run, target: Target, process: plan.Process) -> int:
    summary = await _start(run, target, process)
    port = summary.ports[0].host_port
    await run.step(target, Step.START, StepState.DONE,
                   f"container {summary.name} started on port {port}")
    await _wait_healthy(run, target, port, summary.name)
    return port


async def _start_worker(run: Run, target: Target, process: plan.Process) -> None:
    summary = await _start(run, target, process)
    await run.step(target, Step.START, StepState.DONE, f"container {summary.name} started")


async def _wait_healthy(run: Run, target: Target, port: int, name: str) -> None:
    p = run.params
    await run.step(target, Step.HEALTH, StepState.STARTED,
                   f"waiting for GET {p.health_path} to answer")
    last = ""
    for _ in range(p.health_attempts):
        probe = await target.client.probe(port, p.health_path, p.health_timeout_seconds)
        if probe.ok:
            await run.step(target, Step.HEALTH, StepState.DONE, f"healthy (HTTP {probe.status})")
            return
        last = f"HTTP {probe.status}" if probe.status else (probe.error or "no answer")
        if (await target.client.health(name)).state in ("exited", "dead") or run.aborted.is_set():
            break
        await asyncio.sleep(p.health_interval_seconds)
    await run.step(target, Step.HEALTH, StepState.FAILED, f"not healthy: {last}")
    raise DeployFailed(f"health check GET {p.health_path} failed ({last}); last log lines of "
                       f"{name}:\n{await _log_tail(target, name)}")


async def _log_tail(target: Target, name: str) -> str:
    try:
        lines = [line async for line in target.client.logs(name, tail=LOG_TAIL)]
    except AgentError as exc:
        return f"(no logs: {exc.detail})"
    return "\n".join(lines[-LOG_TAIL:]) or "(the container printed nothing)"


async def _remove_quietly(target: Target, name: str) -> None:
    try:
        await target.client.remove_container(name)
    except AgentError as exc:
        if exc.status_code != 404:
            raise


def _split(run: Run, containers: list[ContainerSummary]
           ) -> tuple[list[ContainerSummary], list[ContainerSummary]]:
    """This deployment's containers, and every other one of the service that it replaces
    (those of its one process type, when it replaces only one)."""
    mine = [c for c in containers if c.labels.get(plan.DEPLOYMENT_LABEL) == run.deployment_id]
    only = run.plan.only
    return mine, [c for c in containers if c not in mine
                  and only in (None, plan.process_of(c.labels)[0])]


async def revert(run: Run) -> list[str]:
    """Point every server back at the release that ran before and remove this one's
    containers. Works from what the agents report, so it also undoes an interrupted run."""
    return await in_parallel(run, lambda target: _revert_server(run, target))


async def _revert_server(run: Run, target: Target) -> None:
    containers = await target.client.containers(run.site)
    mine, _ = _split(run, containers)
    previous = [port.host_port for c in containers
                if c not in mine and c.state == "running" for port in c.ports]
    site = {s.service: s for s in await target.client.sites()}.get(run.site)
    if previous and (site is None or {u.port for u in site.upstreams} != set(previous)):
        await run.step(target, Step.REVERT, StepState.STARTED,
                       "switching back to the previous release")
        await target.client.apply_site(plan.site_for(run.site, run.hosts, previous))
    elif not previous and site is not None:
        await target.client.remove_site(run.site)
    for container in mine:
        await _remove_quietly(target, container.name)
    await run.step(target, Step.REVERT, StepState.DONE, "previous release in place")


async def commit(run: Run, retain: list[str]) -> list[str]:
    """Every server serves the new release: let the old containers drain, stop them, and
    keep only the release images tagged `retain`."""
    await run.enter(Phase.COMMIT,
                    f"draining the previous release for {run.params.grace_seconds:g} s")
    await asyncio.sleep(run.params.grace_seconds)
    return await in_parallel(run, lambda target: _retire_old(run, target, retain))


async def _retire_old(run: Run, target: Target, retain: list[str]) -> None:
    _, others = _split(run, await target.client.containers(run.site))
    for container in others:
        await run.step(target, Step.STOP, StepState.STARTED, f"stopping {container.name}")
        await target.client.stop_container(container.name, run.params.stop_timeout_seconds)
        await _remove_quietly(target, container.name)
    pruned = await target.client.prune(run.params.keep_releases, run.image.repository, retain,
                                       dangling_max_age_seconds=run.settings.build_cache_seconds)
    await run.step(target, Step.STOP, StepState.DONE,
                   f"old release stopped; {len(pruned.removed)} old image(s) removed")
