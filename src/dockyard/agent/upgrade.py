"""An agent installed from a bundle upgrades itself in place: the new release is checked,
unpacked beside the others, self-tested, made `current`, and the agent re-executes itself
(same pid, so systemd keeps it; nginx and the containers are not its children and keep
running). A watchdog from the old release puts the old one back unless the new one answers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from anyio import to_thread

from dockyard.agent import process, release
from dockyard.agent.release import Layout, UnsafeBundle, link_target, replace_link
from dockyard.agent.settings import AgentSettings
from dockyard.agent.tls import fingerprint_of_file
from dockyard.agent.upgrade_watchdog import WatchPlan, watchdog_argv
from dockyard.kernel.errors import Conflict, InvalidInput
from dockyard.models.upgrades import UpgradeAccepted

log = logging.getLogger("dockyard.agent")
NOT_FROM_BUNDLE = ("this agent was not installed from a bundle (DOCKYARD_AGENT_RELEASES_DIR is "
                   "not set): upgrade it with the package manager that installed it")
SELFTEST_CODE = ("import dockyard.agent.app\n"
                 "from dockyard.agent.release import code_version\n"
                 "print(code_version())")
LOCAL_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def selftest_argv(python: str) -> list[str]:
    """Import the agent's app from the release on PYTHONPATH and print its code version."""
    return [python, "-c", SELFTEST_CODE]


def release_env(base: Mapping[str, str], release_dir: Path) -> dict[str, str]:
    return {**base, "PYTHONPATH": str(release_dir)}


def local_url(settings: AgentSettings) -> str:
    host = LOCAL_HOSTS.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if settings.tls else 'http'}://{host}:{settings.port}"


def releases_to_delete(releases: list[Path], keep: set[Path], count: int) -> list[Path]:
    """Beyond the newest `count` releases (by modification time), those not in `keep`."""
    newest = sorted(releases, key=lambda path: path.stat().st_mtime, reverse=True)
    return [path for path in newest[count:] if path.resolve() not in keep]


class Restart:
    """The agent's restart in place: asked for by an upgrade after its answer; `main` stops
    serving (gracefully) and re-executes the agent once its server has returned."""

    def __init__(self) -> None:
        self.requested = False
        self._stop: Callable[[], None] | None = None

    def attach(self, stop: Callable[[], None]) -> None:
        self._stop = stop

    @property
    def in_place(self) -> bool:
        """Whether this agent re-executes itself (served by `main`, not in-process)."""
        return self._stop is not None

    def request(self) -> None:
        self.requested = True
        if self._stop is not None:
            self._stop()


def reexec() -> None:
    """Become the agent again, from what `current` now points at: same python, same argv."""
    log.info("agent restarting in place: %s", " ".join(sys.orig_argv))
    logging.shutdown()
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - this process's own argv


class Upgrader:
    def __init__(self, settings: AgentSettings, restart: Restart,
                 python: str = sys.executable) -> None:
        self.settings = settings
        self.layout = Layout(settings.releases_dir) if settings.releases_dir else None
        self.restart = restart
        self.python = python
        self._lock = asyncio.Lock()

    def _installed(self) -> Layout:
        if self.layout is None:
            raise Conflict(NOT_FROM_BUNDLE)
        if self.restart.requested:
            raise Conflict("an upgrade is under way already: the agent is restarting")
        return self.layout

    async def install(self, data: bytes, version: str, sha256: str) -> UpgradeAccepted:
        """Check, unpack and self-test the bundle, then make it `current` (nothing is switched
        when any step fails)."""
        layout = self._installed()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InvalidInput(f"the bundle's SHA-256 is not {sha256}: it was damaged on the way")
        async with self._lock:
            target = await to_thread.run_sync(self._unpack, layout, data, version)
            await self._selftest(target, version)
            previous = link_target(layout.current)
            await to_thread.run_sync(self._switch, layout, target, previous)
        return UpgradeAccepted(version=version, previous=previous.name if previous else None)

    def _unpack(self, layout: Layout, data: bytes, version: str) -> Path:
        target, staging = layout.release(version), layout.releases / f"{version}.tmp"
        if link_target(layout.current) == target.resolve():
            raise Conflict(f"release {version} is current already")
        for stale in (staging, target):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            release.unpack(data, staging)
        except UnsafeBundle as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise InvalidInput(str(exc)) from exc
        staging.rename(target)
        return target

    async def _selftest(self, target: Path, version: str) -> None:
        argv, env = selftest_argv(self.python), release_env(os.environ, target)
        seconds = self.settings.upgrade_selftest_seconds
        try:
            result = await to_thread.run_sync(
                lambda: process.run(argv, timeout=seconds, env=env, cwd=target))
        except subprocess.TimeoutExpired as exc:
            raise InvalidInput(f"release {version} failed its self-test: no answer within "
                               f"{seconds:g} s") from exc
        lines = result.output.strip().splitlines()
        if not result.ok or lines[-1:] != [version]:
            last = "\n".join(lines[-10:])
            raise InvalidInput(f"release {version} failed its self-test (exit code "
                               f"{result.returncode}, expected it to print {version}): {last}")

    def _switch(self, layout: Layout, target: Path, previous: Path | None) -> None:
        if previous is not None:
            replace_link(layout.previous, previous)
        replace_link(layout.current, target)
        keep = {target.resolve(), *([previous] if previous else [])}
        candidates = [path for path in layout.releases.iterdir()
                      if path.is_dir() and not path.name.endswith(".tmp")]
        for doomed in releases_to_delete(candidates, keep, release.KEEP_RELEASES):
            shutil.rmtree(doomed, ignore_errors=True)

    def restart_in_place(self, version: str, previous: str | None) -> None:
        """After the answer: the watchdog (old release) first, then the restart (also when
        the watchdog could not start: `current` is the new release already)."""
        log.info("agent release %s is current (previous: %s): restarting in place", version,
                 previous)
        try:
            if self.restart.in_place and previous is not None and self.layout is not None:
                self._spawn_watchdog(self.layout, version, self.layout.release(previous))
        finally:
            self.restart.request()

    def _spawn_watchdog(self, layout: Layout, version: str, old: Path) -> None:
        files = self.settings.certificate_files
        plan = WatchPlan(
            pid=os.getpid(), url=local_url(self.settings), version=version, home=layout.home,
            seconds=self.settings.upgrade_watchdog_seconds, argv=list(sys.orig_argv),
            pythonpath=os.environ.get("PYTHONPATH", str(layout.current)),
            fingerprint=fingerprint_of_file(files.certificate) if self.settings.tls else "",
            log_file=self.settings.state_dir / "upgrade-watchdog.log")
        process.spawn(watchdog_argv(self.python, plan), log_file=plan.log_file,
                      env=release_env(os.environ, old))
