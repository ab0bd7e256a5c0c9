"""Droplets of the fake DigitalOcean as hosts of a namespace cluster, running their user-data.

Each booted droplet gets its own network namespace on an existing bridge (a veth, an address
of the bridge's subnet), a private mount namespace held by a `sleep` process, in which the
droplet's own directories (droplet_init.PRIVATE_DIRS) and its dockerd's socket
(/run/docker.sock) are bind-mounted, and a dockerd started inside both. Its cloud-config is
then executed there: `write_files`, then each `runcmd` argv with droplet_bin/ (the
`systemctl` and `apt-get` stand-ins) first on PATH; their output goes to DIR/boot.log, the
units' to DIR/units/UNIT.log (DIR: ROOT/droplets/ID).

A snapshot copies the persistent directories (droplet_init.SNAPSHOTTED) as the droplet sees
them; a droplet booted from it sees them under its own changes (an overlay, so it boots in
about a second). A power off stops all its processes; a power on starts its dockerd and the
units it enabled.

Everything made is recorded in ROOT/hosts.json before it is made, so `close()` (or a later
`DropletHosts` on the same root) removes exactly that, even after a failed boot."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dockyard.agent import process
from dockyard.providers import local, netns
from dockyard.providers.cluster import Running, node_resolvers
from tests.fakes import droplet_init
from tests.fakes.droplet_init import PRIVATE_DIRS, SNAPSHOTTED

PROGRAMS = Path(__file__).resolve().parent / "droplet_bin"
UNITS_VARIABLE = "DOCKYARD_FAKE_DROPLET_UNITS"  # where droplet_bin/systemctl keeps its units
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_SOCKET = "/run/docker.sock"
COMMAND_TIMEOUT = 900


class BootFailed(RuntimeError):
    """A droplet's user-data did not run through; the message says which step and why."""


class DropletRecord(BaseModel):
    droplet_id: int
    index: int
    namespace: str
    veth: str
    ip: str
    root: Path
    lower: Path | None = None  # the snapshot it was booted from, under its own directories
    holder: Running | None = None
    dockerd: Running | None = None

    @property
    def log_file(self) -> Path:
        """The output of every command of its boot, in order."""
        return self.root / "boot.log"

    @property
    def units_dir(self) -> Path:
        """Pid files and output of the units its `systemctl` started."""
        return self.root / "units"

    @property
    def docker(self) -> local.DockerdLayout:
        return local.DockerdLayout(self.root / "docker")


class HostsState(BaseModel):
    next_index: int
    droplets: dict[str, DropletRecord] = Field(default_factory=dict)
    snapshots: dict[str, Path] = Field(default_factory=dict)  # image id -> copied directories


def holder_pid(record: DropletRecord) -> int:
    if record.holder is None:
        raise BootFailed(f"droplet {record.droplet_id} is not running")
    return record.holder.pid


def in_droplet(record: DropletRecord) -> list[str]:
    """Run a program in the droplet's network and mount namespaces."""
    return [*netns.in_netns(record.namespace), f"--mount=/proc/{holder_pid(record)}/ns/mnt"]


def holder_argv(namespace: str) -> list[str]:
    """A process that keeps a private mount namespace (inside `namespace`) alive."""
    return [*netns.in_netns(namespace), "unshare", "--mount", "--propagation", "private",
            "sleep", "infinity"]


def in_mounts(holder: int) -> list[str]:
    return ["nsenter", f"--mount=/proc/{holder}/ns/mnt"]


def bind_argv(holder: int, source: Path, target: str) -> list[str]:
    return [*in_mounts(holder), "mount", "--bind", str(source), target]


def overlay_argv(holder: int, lower: Path, upper: Path, work: Path, target: str) -> list[str]:
    return [*in_mounts(holder), "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={lower},upperdir={upper},workdir={work}", target]


def mount_argv(record: DropletRecord, holder: int, inside: str) -> list[str]:
    """A droplet booted from a snapshot sees the snapshot's files under its own changes (an
    overlay: no copy); other directories are its own alone."""
    own = record.root / PRIVATE_DIRS[inside]
    if record.lower is None or inside not in SNAPSHOTTED:
        return bind_argv(holder, own, inside)
    return overlay_argv(holder, record.lower / PRIVATE_DIRS[inside], own,
                        record.root / "work" / PRIVATE_DIRS[inside], inside)


def droplet_env(record: DropletRecord, host: dict[str, str]) -> dict[str, str]:
    """A fresh root environment; this machine's package access (pip's PIP_* settings,
    proxies) passes through, as apt-get's packages are this machine's."""
    passed = {name: value for name, value in host.items()
              if name.startswith("PIP_") or name.lower().endswith("_proxy")}
    return {**passed, "PATH": f"{PROGRAMS}:{SYSTEM_PATH}", "HOME": "/root", "LANG": "C.UTF-8",
            UNITS_VARIABLE: str(record.units_dir)}


def last_lines(output: str, count: int = 15) -> str:
    return "\n".join(output.strip().splitlines()[-count:])


class DropletHosts:
    """Boots droplets as hosts on `bridge` (addresses `subnet`'s .first, .first+1, ...; the
    bridge's own address, .1 unless `gateway` says, is their default route); each droplet's
    dockerd takes `registry` ("host:port") as an insecure registry. Names: namespace
    PREFIX-dropN, veth PREFIXNh / PREFIXNn (N: the address index)."""

    def __init__(self, bridge: str, subnet: str, registry: str, root: Path, first: int = 100,
                 prefix: str = "dq", gateway: str | None = None) -> None:
        self.bridge, self.registry, self.root, self.prefix = bridge, registry, root, prefix
        self.subnet = ipaddress.IPv4Network(subnet)
        self.gateway = gateway or str(self.subnet.network_address + 1)
        self.state_file = root / "hosts.json"
        self.state = (HostsState.model_validate_json(self.state_file.read_text())
                      if self.state_file.exists() else HostsState(next_index=first))
        self._lock = threading.RLock()
        self._droplet_locks: dict[int, threading.Lock] = {}
        self._doomed: set[int] = set()

    def _save(self) -> None:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            scratch = self.state_file.with_suffix(".tmp")
            scratch.write_text(self.state.model_dump_json(indent=1))
            scratch.replace(self.state_file)

    def record(self, droplet_id: int) -> DropletRecord:
        return self.state.droplets[str(droplet_id)]

    def _droplet_lock(self, droplet_id: int) -> threading.Lock:
        with self._lock:
            return self._droplet_locks.setdefault(droplet_id, threading.Lock())

    # Boot

    def boot(self, droplet: dict[str, Any], user_data: str) -> str:
        """The fake's on_boot hook: make the host, run its user-data, answer its address."""
        config = droplet_init.parse(user_data)
        with self._droplet_lock(int(droplet["id"])):
            record = self._allocate(int(droplet["id"]))
            started = time.monotonic()
            steps = [partial(self._restore, record, str(droplet.get("image", {}).get("id"))),
                     partial(self._write_files, record, config.write_files),
                     partial(self._network, record), partial(self._holder, record),
                     partial(self._dockerd, record),
                     *(partial(self._run, record, argv) for argv in config.runcmd)]
            for step in steps:
                step()
                _log(record, f"# {time.monotonic() - started:.2f} s: {_name(step)} done\n")
        return record.ip

    def _allocate(self, droplet_id: int) -> DropletRecord:
        with self._lock:
            if droplet_id in self._doomed:
                raise BootFailed(f"droplet {droplet_id} was destroyed before it booted")
            index = self.state.next_index
            self.state.next_index += 1
            record = DropletRecord(
                droplet_id=droplet_id, index=index, namespace=f"{self.prefix}-drop{index}",
                veth=f"{self.prefix}{index}h", ip=str(self.subnet.network_address + index),
                root=self.root / "droplets" / str(droplet_id))
            self.state.droplets[str(droplet_id)] = record
            self._save()
        for name in [*PRIVATE_DIRS.values(), "units"]:
            (record.root / name).mkdir(parents=True, exist_ok=True)
        return record

    def _restore(self, record: DropletRecord, image_id: str) -> None:
        record.lower = self.state.snapshots.get(image_id)
        self._save()
        for name in PRIVATE_DIRS.values():
            (record.root / "work" / name).mkdir(parents=True, exist_ok=True)

    def _write_files(self, record: DropletRecord,
                     files: tuple[droplet_init.FileToWrite, ...]) -> None:
        """Before its directories are mounted (an overlay's upper directory is not to be
        changed under it)."""
        droplet_init.write_files(record.root, files, record.lower)

    def _network(self, record: DropletRecord) -> None:
        process.check(netns.add_namespace(record.namespace))
        for argv in netns.veth_into_namespace(
                record.veth, record.veth[:-1] + "n", record.namespace, self.bridge,
                f"{record.ip}/{self.subnet.prefixlen}"):
            process.check(argv)
        process.check(netns.default_route(record.namespace, self.gateway))

    def _holder(self, record: DropletRecord) -> None:
        for inside in PRIVATE_DIRS:
            Path(inside).mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(DOCKER_SOCKET):
            Path(DOCKER_SOCKET).touch()
        child = process.spawn(holder_argv(record.namespace), log_file=record.log_file)
        record.holder = Running(pid=child.pid, program="sleep")
        self._save()
        local.wait_until(lambda: _private_mounts(child.pid), timeout=10,
                         what=f"mount namespace of droplet {record.droplet_id}", interval=0.02)
        for inside in PRIVATE_DIRS:
            process.check(mount_argv(record, child.pid, inside))

    def _dockerd(self, record: DropletRecord) -> None:
        layout = local.DockerdLayout(record.docker.root, (self.registry,), shutdown_timeout=3,
                                     dns=tuple(node_resolvers()))
        pid = local.start_dockerd(layout, in_droplet(record))
        record.dockerd = Running(pid=pid, program="dockerd")
        self._save()
        process.check(bind_argv(holder_pid(record), layout.socket, DOCKER_SOCKET))

    def run(self, droplet_id: int, argv: list[str] | tuple[str, ...],
            timeout: float = COMMAND_TIMEOUT) -> process.Result:
        """Run a program in the droplet as its runcmd would (logged to its boot.log)."""
        record = self.record(droplet_id)
        result = process.run([*in_droplet(record), *argv], timeout=timeout,
                             env=droplet_env(record, dict(os.environ)), cwd=Path("/"))
        _log(record, f"$ {' '.join(argv)}\n{result.output}[exit {result.returncode}]\n")
        return result

    def _run(self, record: DropletRecord, argv: tuple[str, ...]) -> None:
        if record.droplet_id in self._doomed:
            raise BootFailed(f"droplet {record.droplet_id} was destroyed while booting")
        result = self.run(record.droplet_id, argv)
        if not result.ok:
            raise BootFailed(f"droplet {record.droplet_id}: runcmd {list(argv)} exited "
                             f"{result.returncode}: {last_lines(result.output)}")

    # Power off, snapshot, destroy

    def power_off(self, droplet_id: int) -> None:
        """Stop every process of the droplet; its directories stay (to be snapshotted)."""
        with self._droplet_lock(droplet_id):
            self._stop(self.record(droplet_id))

    def power_on(self, droplet_id: int) -> None:
        """Boot a powered-off droplet again: its dockerd, then the units it enabled (cloud-init
        runs once per droplet: its user-data does not run again)."""
        with self._droplet_lock(droplet_id):
            record = self.record(droplet_id)
            if record.holder is None:
                self._holder(record)
                self._dockerd(record)
                self._run(record, ("systemctl", "__boot"))

    def snapshot(self, droplet_id: int, image_id: int | str) -> None:
        """Copy the droplet's persistent directories as it sees them (a powered-off droplet's
        are mounted for the copy); a droplet booted from `image_id` starts with them."""
        target = self.root / "snapshots" / str(image_id)
        with self._droplet_lock(droplet_id):
            record = self.record(droplet_id)
            powered_off = record.holder is None
            if powered_off:
                self._holder(record)
            try:
                for inside in SNAPSHOTTED:
                    (target / PRIVATE_DIRS[inside]).mkdir(parents=True, exist_ok=True)
                    process.check([*in_mounts(holder_pid(record)), "cp", "-a", f"{inside}/.",
                                   str(target / PRIVATE_DIRS[inside])])
            finally:
                if powered_off:
                    self._stop(record)
        with self._lock:
            self.state.snapshots[str(image_id)] = target
            self._save()

    def destroy(self, droplet_id: int) -> None:
        """Stop the droplet's processes, remove its namespace, veth, mounts and directories
        (after a boot still running gives up at its next command)."""
        with self._lock:
            self._doomed.add(droplet_id)
            if str(droplet_id) not in self.state.droplets:
                return
        with self._droplet_lock(droplet_id):
            record = self.record(droplet_id)
            self._stop(record)
            if netns.namespace_exists(record.namespace):
                process.check(netns.delete_namespace(record.namespace))
            if netns.link_exists(record.veth):
                process.check(netns.delete_link(record.veth))
            _unmount_under(record.root)
            shutil.rmtree(record.root, ignore_errors=True)
            with self._lock:
                del self.state.droplets[str(droplet_id)]
                self._save()

    def close(self) -> None:
        """Destroy every droplet host and snapshot, and the root itself."""
        for key in list(self.state.droplets):
            self.destroy(int(key))
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop(self, record: DropletRecord) -> None:
        if record.dockerd is not None:
            netns.stop_process(record.dockerd.pid, record.dockerd.program, grace=20)
        if netns.namespace_exists(record.namespace):
            stop_namespace(record.namespace)
        if record.holder is not None:
            netns.stop_process(record.holder.pid, record.holder.program, grace=5)
        record.holder = record.dockerd = None
        self._save()


def _log(record: DropletRecord, text: str) -> None:
    with record.log_file.open("a") as log:
        log.write(text)


def _name(step: partial[Any]) -> str:
    return getattr(step.func, "__name__", "step").lstrip("_")


def _private_mounts(pid: int) -> bool:
    """Whether `pid` has left this process's mount namespace (unshare has run)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def namespace_pids(namespace: str) -> set[int]:
    """The processes in `namespace` and all their descendants (containers of its dockerd)."""
    inode = (netns.NETNS_DIR / namespace).stat().st_ino
    found, parents = set(), {}
    for pid in _pids():
        with contextlib.suppress(OSError, IndexError):
            if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                found.add(pid)
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    grown = True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grown = bool(more)
    return found


def stop_namespace(namespace: str, rounds: int = 5) -> None:
    """Stop every process in `namespace`, again while any is left: a supervisor stopped in
    one round may have started a child (the agent its nginx) after that round's scan."""
    for _ in range(rounds):
        pids = namespace_pids(namespace)
        if not pids:
            return
        stop_all(pids)


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def stop_all(pids: set[int], grace: float = 5) -> None:
    """SIGTERM each, SIGKILL what still runs after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = {pid for pid in pids if not _gone(pid)}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while any(not _gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)


def _unmount_under(root: Path) -> None:
    for point in netns.mounts_under(root, Path("/proc/self/mountinfo").read_text()):
        process.check(netns.unmount(point))
