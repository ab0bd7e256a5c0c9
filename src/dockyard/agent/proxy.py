"""The node's nginx pair: write a site, `nginx -t`, restore the previous file on failure, reload.

`NginxInstance` drives one nginx; `Nginx` drives the node's edge and switch instances (see
`dockyard.agent.nginx`): a change of upstreams reloads only the switch, and a change of names
reloads nothing (the edge finds each name's directory under `hosts/`)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

from dockyard.agent import nginx, process
from dockyard.agent.models import Site
from dockyard.agent.nginx import NginxLayout
from dockyard.kernel.errors import InvalidInput, ServerFailed

RELOAD_TIMEOUT = 10
log = logging.getLogger("dockyard.agent")


class NginxRejected(InvalidInput):
    """`nginx -t` refused the configuration; the previous one was put back."""


def run_nginx(argv: list[str], what: str) -> None:
    """Run an nginx signal or start command; its exit code and output in the error."""
    result = process.run(argv, timeout=30)
    if not result.ok:
        raise ServerFailed(f"nginx could not {what}: exited {result.returncode}: "
                           f"{result.output.strip()[-2000:]}")


def children_of(pid: int) -> set[int]:
    children = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and int(fields[1]) == pid:
            children.add(int(stat_file.parent.name))
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


def _is_master_of(pid: int, layout: NginxLayout) -> bool:
    """Whether `pid` is an nginx started with `layout`'s configuration (before or after it
    names itself `nginx: master process ...`)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    words = cmdline.replace(b"\0", b" ").split()
    program = Path(words[0].decode(errors="replace")).name if words else ""
    return program.startswith("nginx") and str(layout.conf).encode() in words


def _is_nginx_worker(proc: Path) -> bool:
    try:
        title = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return title.startswith(b"nginx: ") and not title.startswith(b"nginx: master")


def _holds_open(proc: Path, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in (proc / "fd").iterdir())
    except OSError:
        return False


def leftover_workers(layout: NginxLayout) -> set[int]:
    """Workers of this instance whose master is gone: they still hold its error log open
    (and its ports, so that a new master could not bind them)."""
    return {int(proc.name) for proc in Path("/proc").glob("[0-9]*")
            if _is_nginx_worker(proc) and _holds_open(proc, layout.error_log)}


def kill_leftover_workers(layout: NginxLayout) -> None:
    """SIGKILL the workers a dead master left behind, and wait until they are gone."""
    alive = leftover_workers(layout)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while any(process.is_running(pid) for pid in alive) and time.monotonic() < deadline:
        time.sleep(0.01)


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file holds it already; whether it was written."""
    if path.exists() and path.read_text() == text:
        return False
    write_atomically(path, text)
    return True


def remove_stale_socket(path: Path) -> None:
    """Delete a socket file nothing listens on (left by a killed nginx): nginx cannot bind
    a path that exists. A live socket is left alone."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _point(directory: Path, target: str) -> None:
    """Make `directory/switch.sock` a symlink to `target`, replaced in one rename."""
    directory.mkdir(mode=0o755, exist_ok=True)
    link = directory / "switch.sock"
    if link.is_symlink() and os.readlink(link) == target:
        return
    temporary = directory / ".switch.sock.new"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, link)


def _unroute(directory: Path) -> None:
    """Remove a name's directory: renamed away first, so the edge stops finding it at once."""
    doomed = directory.parent.parent / f".removed-{hashlib.sha256(bytes(directory)).hexdigest()}"
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(directory, doomed)
    shutil.rmtree(doomed)


def sync_hosts(hosts: Path, routes: dict[str, str]) -> None:
    """Make `hosts` hold exactly one directory per name of `routes` (name -> service), each
    leading to its service's switch socket."""
    hosts.mkdir(mode=0o755, exist_ok=True)
    for name, service in routes.items():
        _point(hosts / name, nginx.switch_link(service))
    for directory in hosts.iterdir():
        if directory.name not in routes:
            _unroute(directory)


def unsearchable_by_others(path: Path) -> Path | None:
    """The first directory above `path` that other users (nginx workers run as `nobody`
    when the master is root) cannot enter, if any."""
    for directory in [*reversed(path.parents), path]:
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            return directory
    return None


class NginxInstance:
    """One nginx: its own configuration, sites, pid file and logs under `layout.root`."""

    def __init__(self, layout: NginxLayout, binary: str = "nginx") -> None:
        self.layout = layout
        self.binary = binary

    def prepare(self) -> bool:
        """Create the directories and write the main configuration; whether it changed."""
        self.make_directories()
        return write_if_changed(self.layout.conf, nginx.render_main(self.layout))

    def make_directories(self) -> None:
        for directory in (self.layout.sites, self.layout.root / "logs", self.layout.root / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        runtime = self.layout.runtime
        for directory in (runtime.parent, runtime):
            directory.mkdir(exist_ok=True)
            directory.chmod(0o755)  # nginx workers (nobody) connect in here
        if not self.layout.switch:  # its workers start in `hosts` (or exit)
            for directory in (self.layout.hosts, self.layout.acme):
                directory.mkdir(mode=0o755, exist_ok=True)

    def site_text(self, service: str) -> str | None:
        path = self.layout.site_file(service)
        return path.read_text() if path.exists() else None

    def replace(self, service: str, text: str | None) -> None:
        """Write (or with None, delete) a site file, check, restore it if refused, reload."""
        path = self.layout.site_file(service)
        previous = self.site_text(service)
        self._put(path, text)
        try:
            self.check()
        except NginxRejected:
            self._put(path, previous)
            raise
        if self.layout.switch and previous is None:
            remove_stale_socket(self.layout.socket(service))
        self.reload()

    def write_all(self, sites: list[Site]) -> bool:
        """Make the sites directory hold exactly `sites` (used when restoring); whether any
        file changed. The edge has no site files (those of earlier agents go)."""
        wanted = {self.layout.site_file(site.service): site
                  for site in (sites if self.layout.switch else [])}
        stale = set(self.layout.sites.glob("*.conf")) - set(wanted)
        for path in stale:
            path.unlink()
        written = [write_if_changed(path, nginx.render_switch_site(site, self.layout))
                   for path, site in wanted.items()]
        self.check()
        return bool(stale) or any(written)

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
        """The master's pid, while that process lives and is this instance's master (the pid
        file of a killed nginx stays, and its pid may be reused)."""
        try:
            pid = int(self.layout.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process.is_running(pid) and _is_master_of(pid, self.layout) else None

    def reopen_logs(self) -> None:
        """Have a running master reopen its log files (USR1: nginx flushes its buffered
        lines into the old file first; no reload, no connection closed)."""
        if (master := self.running_pid()) is not None:
            os.kill(master, signal.SIGUSR1)

    def workers(self) -> set[int]:
        master = self.running_pid()
        return set() if master is None else children_of(master)

    def reload(self) -> None:
        """Reload a running nginx (returning once new workers serve the new configuration),
        or start it when it is not running."""
        master = self.running_pid()
        if master is None:
            self._start()
            return
        old_workers = children_of(master)
        run_nginx(nginx.reload_argv(self.binary, self.layout), "reload")
        self._wait_until(lambda: _replaced(master, old_workers), "replace its workers")

    def _start(self) -> None:
        if self.layout.switch:
            for path in self.layout.sockets.glob("*.sock"):
                remove_stale_socket(path)
        run_nginx(nginx.start_argv(self.binary, self.layout), "start")
        self._wait_until(lambda: bool(self.workers()), "start its workers")

    def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while not condition():
            if time.monotonic() > deadline:
                raise NginxRejected(f"nginx did not {what} within {RELOAD_TIMEOUT} s; "
                                    f"see {self.layout.error_log}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.running_pid() is not None:
            run_nginx(nginx.stop_argv(self.binary, self.layout), "stop")

    def revive(self, sites: list[Site]) -> None:
        """Start this instance again after its master died: the configuration written anew
        from `sites` and checked, the workers the dead master left behind killed, started."""
        self.prepare()
        self.write_all(sites)
        kill_leftover_workers(self.layout)
        self._start()


class Nginx:
    """The node's two nginx instances, built from the edge's layout: the edge holds client
    connections and is never reloaded for a site (only when its own configuration changes,
    with an agent upgrade); the switch holds the upstreams and is reloaded when they change."""

    def __init__(self, layout: NginxLayout, binary: str = "nginx") -> None:
        self.layout = layout
        self.edge = NginxInstance(layout, binary)
        self.switch = NginxInstance(layout.switch_layout, binary)

    @property
    def instances(self) -> tuple[NginxInstance, NginxInstance]:
        """In start order: the switch first, so that its sockets exist when the edge serves."""
        return self.switch, self.edge

    def prepare(self) -> None:
        for instance in self.instances:
            instance.prepare()
        if problem := self.unreachable_sockets():
            log.warning("%s", problem)

    def unreachable_sockets(self) -> str | None:
        """Why the edge's workers (`nobody` under a root master) could not connect to the
        switch's sockets, if they could not."""
        sockets = self.switch.layout.sockets
        closed = unsearchable_by_others(sockets) if os.geteuid() == 0 else None
        if closed is None:
            return None
        return (f"nginx workers cannot reach the sockets in {sockets}: {closed} is closed to "
                f"other users (chmod o+x it, or keep the agent's state elsewhere)")

    def apply(self, site: Site, sites: list[Site]) -> None:
        """The switch first, reloaded only if its upstreams changed (returns once its new
        workers serve); then the edge's routes of `sites` (every site, `site` among them);
        the edge is started if it does not run, never reloaded."""
        if problem := self.unreachable_sockets():
            raise InvalidInput(problem)
        for name in site.server_names:
            nginx.require_routable(name)
        text = nginx.render_switch_site(site, self.switch.layout)
        if self.switch.site_text(site.service) != text or self.switch.running_pid() is None:
            self.switch.replace(site.service, text)
        self.route(sites)
        if self.edge.running_pid() is None:
            self.edge.reload()  # starts it

    def remove(self, service: str, sites: list[Site]) -> None:
        """The edge stops routing to the socket (its names go to `sites`, the ones left)
        before the switch closes it."""
        self.route(sites)
        if self.switch.site_text(service) is not None:
            self.switch.replace(service, None)

    def route(self, sites: list[Site]) -> None:
        """Every name of `sites` leads to its service on the edge, no other name does."""
        self.edge.make_directories()
        sync_hosts(self.layout.hosts, nginx.host_routes(sites))

    def write_all(self, sites: list[Site]) -> None:
        for instance in self.instances:
            instance.write_all(sites)

    def restore(self, sites: list[Site]) -> None:
        """Both layers as `sites` say, after an agent restart. A running layer is reloaded
        only when its files changed: a reload closes the edge's idle client connections.
        (The agent writes a site's files before it reloads, and records the site after: so
        unchanged files were loaded.)"""
        for instance in self.instances:
            changed = instance.prepare()
            changed = instance.write_all(sites) or changed
            if changed or instance.running_pid() is None:
                instance.reload()
        self.route(sites)
        if problem := self.unreachable_sockets():
            log.warning("%s", problem)

    def check(self) -> None:
        for instance in self.instances:
            instance.check()

    def reload(self) -> None:
        for instance in self.instances:
            instance.reload()

    def running_pid(self) -> int | None:
        """The edge's master: the one that holds the client connections."""
        return self.edge.running_pid()

    def running_pids(self) -> list[int]:
        """The masters of both instances that run, edge first."""
        return [pid for i in (self.edge, self.switch) if (pid := i.running_pid()) is not None]

    def stop(self) -> None:
        """Stop both instances (gracefully: the edge first, then the switch behind it)."""
        for instance in (self.edge, self.switch):
            instance.stop()
