"""The node's nginx: write a site, `nginx -t`, restore the previous file on failure, reload."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from dockyard.agent import nginx, process
from dockyard.agent.models import Site
from dockyard.agent.nginx import NginxLayout
from dockyard.kernel.errors import InvalidInput

RELOAD_TIMEOUT = 10


class NginxRejected(InvalidInput):
    """`nginx -t` refused the configuration; the previous one was put back."""


def children_of(pid: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _shutting_down(pid: int) -> bool:
    """Old workers retitle themselves right before they close their listening sockets."""
    try:
        return b"shutting down" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _replaced(master: int, old_workers: set[int]) -> bool:
    """New workers run and no old one still accepts connections (old ones may drain)."""
    current = children_of(master)
    return bool(current - old_workers) and all(_shutting_down(p) for p in current & old_workers)


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class Nginx:
    def __init__(self, layout: NginxLayout, binary: str = "nginx") -> None:
        self.layout = layout
        self.binary = binary

    def prepare(self) -> None:
        """Create the directories and write the default configuration."""
        for directory in (self.layout.sites, self.layout.root / "logs", self.layout.root / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.layout.conf, nginx.render_main(self.layout))

    def apply(self, site: Site) -> None:
        self._replace(self.layout.site_file(site.service), nginx.render_site(site, self.layout))

    def remove(self, service: str) -> None:
        self._replace(self.layout.site_file(service), None)

    def write_all(self, sites: list[Site]) -> None:
        """Make the sites directory hold exactly `sites` (used when restoring)."""
        wanted = {self.layout.site_file(site.service): site for site in sites}
        for stale in set(self.layout.sites.glob("*.conf")) - set(wanted):
            stale.unlink()
        for path, site in wanted.items():
            write_atomically(path, nginx.render_site(site, self.layout))
        self.check()

    def _replace(self, path: Path, text: str | None) -> None:
        previous = path.read_text() if path.exists() else None
        self._put(path, text)
        try:
            self.check()
        except NginxRejected:
            self._put(path, previous)
            raise
        self.reload()

    @staticmethod
    def _put(path: Path, text: str | None) -> None:
        if text is None:
            path.unlink(missing_ok=True)
        else:
            write_atomically(path, text)

    def check(self) -> None:
        result = process.run(nginx.check_argv(self.binary, self.layout), timeout=30)
        if not result.ok:
            raise NginxRejected(f"nginx rejected the configuration: {result.output.strip()}")

    def running_pid(self) -> int | None:
        try:
            pid = int(self.layout.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def reload(self) -> None:
        """Reload a running nginx (returning once new workers serve the new configuration),
        or start it when it is not running."""
        master = self.running_pid()
        if master is None:
            process.check(nginx.start_argv(self.binary, self.layout), timeout=30)
            self._wait_until(self._has_workers, "start its workers")
            return
        old_workers = children_of(master)
        process.check(nginx.reload_argv(self.binary, self.layout), timeout=30)
        self._wait_until(lambda: _replaced(master, old_workers), "replace its workers")

    def _has_workers(self) -> bool:
        master = self.running_pid()
        return master is not None and bool(children_of(master))

    def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while not condition():
            if time.monotonic() > deadline:
                raise NginxRejected(f"nginx did not {what} within {RELOAD_TIMEOUT} s; "
                                    f"see {self.layout.error_log}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.running_pid() is not None:
            process.check(nginx.stop_argv(self.binary, self.layout), timeout=30)
