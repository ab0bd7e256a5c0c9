"""From a source to the release image in the registry, built on a node through its agent."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from anyio import to_thread

from dockyard.agent.buildconfig import BuildOptions
from dockyard.agent.client import AgentError
from dockyard.agent.models import ImageRef
from dockyard.deploy import dockerfile, runtimes, sources
from dockyard.deploy.plan import parse_image
from dockyard.deploy.run import DeployFailed, Run, Target
from dockyard.deploy.runtimes import Declared
from dockyard.kernel import host_lock
from dockyard.kernel.settings import Settings
from dockyard.models.deployment_plan import (
    FromArchive,
    FromGit,
    FromImage,
    FromRelease,
    Phase,
    Processes,
)
from dockyard.providers import images

OOM_EXIT = "returned a non-zero code: 137"  # the legacy builder's words for a SIGKILLed step
PUSH_LOCK_RETRY_SECONDS = 0.2
PUSH_WAIT_NOTICE_SECONDS = 2.0


def work_dir(run: Run) -> Path:
    return run.settings.data_dir / "builds" / run.deployment_id


async def build_release(run: Run) -> None:
    """Make `run.image` exist in the registry; rollbacks and restarts reuse theirs."""
    source = run.source
    if isinstance(source, FromRelease):
        return
    builder = run.targets[0]
    if isinstance(source, FromImage):
        await _retag(run, builder, parse_image(source.image))
    else:
        await _build(run, builder, await _checkout(run, source))
    await _push(run, builder)
    await to_thread.run_sync(shutil.rmtree, work_dir(run), True)


async def _push(run: Run, builder: Target) -> None:
    """Push holding the registry's lock shared: a garbage collection under way ends first."""
    await run.enter(Phase.PUSH, f"pushing {run.image.reference}")
    notice = host_lock.Notice(PUSH_WAIT_NOTICE_SECONDS, lambda: run.emit(
        "log", "waiting for the registry's garbage collection to end before pushing",
        source="push"))
    async with host_lock.held(run.settings.data_dir / host_lock.REGISTRY_LOCK,
                              PUSH_LOCK_RETRY_SECONDS, shared=True, notice=notice):
        await _relay(run, builder.client.push(run.image), "push")


async def _checkout(run: Run, source: FromArchive | FromGit) -> Path:
    if isinstance(source, FromArchive):
        return Path(source.path)
    wanted = f" commit {source.commit}" if source.commit else ""
    await run.enter(Phase.FETCH, f"fetching {source.url} {source.ref or 'HEAD'}{wanted}")
    dest = work_dir(run) / "git"
    await to_thread.run_sync(shutil.rmtree, dest, True)
    dest.mkdir(parents=True)
    commit = await to_thread.run_sync(lambda: sources.fetch_git(
        source.url, source.ref, dest, commit=source.commit, credential=run.git_credential,
        known_hosts=run.settings.data_dir / "ssh" / "known_hosts"))
    await run.emit("log", f"checked out commit {commit}", commit=commit)
    return dest


async def _retag(run: Run, builder: Target, source: ImageRef) -> None:
    await run.enter(Phase.PULL, f"pulling {source.reference} on {builder.name}")
    await _relay(run, builder.client.pull(source), "pull")
    await builder.client.tag(source, run.image)


def _app_root(checkout: Path, root: str | None) -> Path:
    """The directory to build: the whole source, or its `root` subdirectory."""
    app_dir = checkout / root if root else checkout
    if not app_dir.resolve().is_relative_to(checkout.resolve()) or not app_dir.is_dir():
        raise DeployFailed(f"root {root!r} is not a directory of the app's source")
    return app_dir


async def _build(run: Run, builder: Target, checkout: Path) -> None:
    params, settings = run.params, run.settings
    app_dir = _app_root(checkout, params.root)
    stack = await to_thread.run_sync(dockerfile.detect_stack, app_dir, params.dockerfile)
    await _record_processes(run, await to_thread.run_sync(dockerfile.app_processes, app_dir))
    for note in stack.notes:
        await run.emit("log", note)
    if params.command and stack.kind != "dockerfile":
        await run.emit("log", f"the service's command overrides it: {' '.join(params.command)}")
    text = None
    if stack.kind != "dockerfile":
        base = await _base_image(run, builder, dockerfile.base_image_for(
            stack, params.base_image or settings.base_image),
            images.RECIPES[dockerfile.offline_recipe(stack)], stack.runtime)
        text = dockerfile.render_dockerfile(stack, base, params.port)
    context = work_dir(run) / "context.tar"
    name = await to_thread.run_sync(sources.build_context, app_dir, context, text,
                                    params.dockerfile or "Dockerfile")
    await run.enter(Phase.BUILD, f"building {run.image.reference} on {builder.name}")
    options = BuildOptions(tuple(params.build_args or ()), settings.build_memory_mb,
                           settings.build_cpus)
    await _limited_build(run, builder.client.build(context, run.image, name, options))


async def _record_processes(run: Run, found: Processes) -> None:
    if found.commands or found.release:
        kinds = ", ".join([*found.commands, *(["release"] if found.release else [])])
        await run.emit("log", f"process types from the Procfile besides web: {kinds}")
    await run.record_processes(found)


async def _limited_build(run: Run, lines: AsyncIterator[dict[str, Any]]) -> None:
    """The build's output relayed; past the time limit, or killed for memory, it fails
    saying which limit it hit and the setting that raises it."""
    try:
        with anyio.fail_after(run.settings.build_timeout_seconds):
            await _relay(run, lines, "build")
    except TimeoutError as exc:
        raise limit_failure(run.settings, None) from exc
    except DeployFailed as exc:
        named = limit_failure(run.settings, exc)
        if named is exc:
            raise
        raise named from exc


def limit_failure(settings: Settings, failure: DeployFailed | None) -> DeployFailed:
    """The build's failure (None: it ran out of time), naming the limit it hit if it did."""
    if failure is None:
        return DeployFailed(f"the build took longer than its time limit of "
                            f"{settings.build_timeout_seconds:g} s (setting "
                            "DOCKYARD_BUILD_TIMEOUT_SECONDS)")
    if OOM_EXIT not in str(failure):
        return failure
    return DeployFailed(f"{failure}: killed for using more than the build's memory limit of "
                        f"{settings.build_memory_mb} MB (setting DOCKYARD_BUILD_MEMORY_MB)")


async def _relay(run: Run, lines: AsyncIterator[dict[str, Any]], what: str) -> None:
    """Forward a node's progress lines into the event log; an error line fails the deploy."""
    try:
        async for line in lines:
            text = _line_text(line)
            if text:
                await run.emit("log", text, source=what)
    except AgentError as exc:
        raise DeployFailed(f"{what} failed: {exc.detail}") from exc


def _line_text(line: dict[str, Any]) -> str:
    if "progressDetail" in line and line.get("progressDetail"):
        return ""
    text = line.get("stream") or line.get("status") or line.get("error") or ""
    return str(text).rstrip()


async def _has_image(target: Target, reference: str) -> bool:
    return any(reference in image.tags for image in await target.client.images())


async def _base_image(run: Run, builder: Target, wanted: str, offline: images.Recipe,
                      runtime: Declared | None) -> str:
    """`wanted` when the builder has it or can pull it; otherwise the offline base, if it
    has the runtime version the app declares."""
    ref = parse_image(wanted)
    if await _has_image(builder, ref.reference):
        return wanted
    try:
        async for _ in builder.client.pull(ref):
            pass
        return wanted
    except AgentError as exc:
        settings = _offline_settings(offline, runtime, f"could not pull {wanted} ({exc.detail})")
        reference = await _offline_base(run, builder, offline, settings)
        await run.emit("warning", f"could not pull {wanted} ({exc.detail}); building on the "
                                  f"offline base {reference} instead")
        return reference


def _offline_settings(recipe: images.Recipe, runtime: Declared | None, why: str
                      ) -> images.ImageSettings:
    """The offline base's release: the machine's own, else a cached one whose packages
    satisfy the version the app declares; DeployFailed naming what there is otherwise."""
    settings = images.ImageSettings()
    suite = images.cached_tarball(recipe, settings).suite
    problem = runtimes.offline_problem(runtime, suite) if runtime else None
    if runtime is None or problem is None:
        return settings
    others = [other for other in runtimes.releases_for(runtime) if other != suite]
    for other in others:
        candidate = images.ImageSettings(suite=other)
        if images.cached_tarball(recipe, candidate).path.exists():
            return candidate
    hint = (f"; Debian {others[0]} would: build its base with `DOCKYARD_IMAGES_SUITE={others[0]} "
            f"dockyard images bootstrap --image {recipe.name}`" if others else "")
    raise DeployFailed(f"{why}, and {problem}{hint}")


async def _offline_base(run: Run, builder: Target, recipe: images.Recipe,
                        settings: images.ImageSettings) -> str:
    """The debootstrapped base on the builder, imported from this machine's cache if needed."""
    tarball = images.cached_tarball(recipe, settings)
    reference = f"{recipe.repository()}:{tarball.suite}"
    if await _has_image(builder, reference):
        return reference
    if not tarball.path.exists():
        raise DeployFailed(f"no base image: {builder.name} has no {reference} and this machine "
                           "has none cached; run `dockyard images bootstrap --image "
                           f"{recipe.name}`")
    await run.emit("log", f"importing the offline base {reference} into {builder.name}")
    await builder.client.import_rootfs(tarball.path,
                                       ImageRef(repository=recipe.repository(), tag=tarball.suite))
    return reference
