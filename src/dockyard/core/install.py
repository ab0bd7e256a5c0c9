"""`dockyard install`: the control plane and this machine's node under systemd.

A plan (files to write, directories to make, `systemctl` commands to run) is built by pure
functions from the settings; `apply_install` carries it out through a runner, the one seam
through which commands run."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from dockyard.agent import process
from dockyard.agent.settings import AgentSettings
from dockyard.core.local_node import launch_of
from dockyard.kernel.settings import Settings
from dockyard.providers import local, registry, systemd
from dockyard.providers.cluster import registry_config

API_UNIT = "dockyard-api.service"
WORKER_UNIT = "dockyard-worker.service"
RELAY_UNIT = "dockyard-relay.service"
REGISTRY_UNIT = "dockyard-registry.service"
AGENT_UNIT = "dockyard-agent.service"
CONFIG_DIR = Path("/etc/dockyard")
CONTROL_PLANE_ENV = CONFIG_DIR / "dockyard.env"
AGENT_ENV = CONFIG_DIR / "agent.env"
BOOTED_MARKER = Path("/run/systemd/system")  # what sd_booted(3) checks
# Where a provisioned server's agent listens and keeps its state.
PROVISIONED_AGENT = local.AgentLaunch(
    state_dir=Path("/var/lib/dockyard-agent"), host="0.0.0.0",  # noqa: S104 - adopted over TLS
    port=8421, docker_host=f"unix://{local.DEFAULT_DOCKER_SOCKET}",
)
_CONTROL_PLANE_AFTER = ("network-online.target", "postgresql.service", "redis-server.service")
_DESCRIPTIONS = {"serve": "Dockyard API", "worker": "Dockyard worker",
                 "relay": "Dockyard outbox relay"}

Runner = Callable[[Sequence[str]], object]


class InstallError(RuntimeError):
    """Something outside Dockyard must change first; the message says what."""


@dataclass(frozen=True)
class FileToWrite:
    path: Path
    text: str
    mode: int = 0o644
    # What `--dry-run` shows instead of the text, for files that hold secrets.
    shown: str | None = None


@dataclass(frozen=True)
class InstallPlan:
    directories: tuple[Path, ...]
    files: tuple[FileToWrite, ...]
    commands: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class UninstallPlan:
    before: tuple[tuple[str, ...], ...]
    removals: tuple[Path, ...]
    after: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Roles:
    control_plane: bool
    node: bool


def under(root: Path, path: Path) -> Path:
    """`path` of the installed system, inside `root` on this one."""
    return root / path.relative_to("/")


def _cli(python: Path, command: str) -> tuple[str, ...]:
    return (str(python), "-m", "dockyard.cli.main", command)


def _control_plane_unit(settings: Settings, python: Path, name: str, command: str,
                        after: tuple[str, ...]) -> systemd.Unit:
    pre = (_cli(python, "migrate"),) if command == "serve" else ()
    return systemd.Unit(
        name, _DESCRIPTIONS[command], _cli(python, command), environment_file=CONTROL_PLANE_ENV,
        working_directory=settings.data_dir, exec_start_pre=pre, after=after,
    )


def control_plane_units(settings: Settings, python: Path) -> list[systemd.Unit]:
    """The API (migrating the database before it starts), the worker, and the relay when
    Redis is the queue; each drains within 10 s of SIGTERM. The others start after the API,
    so after its migration."""
    after_api = (*_CONTROL_PLANE_AFTER, API_UNIT)
    wanted = [(API_UNIT, "serve", _CONTROL_PLANE_AFTER), (WORKER_UNIT, "worker", after_api)]
    if settings.redis_url:
        wanted.append((RELAY_UNIT, "relay", after_api))
    return [_control_plane_unit(settings, python, *each) for each in wanted]


def agent_unit(launch: local.AgentLaunch, python: Path) -> systemd.Unit:
    """The node agent, after Docker. Its nginx layers are its children: they keep serving
    while the agent restarts (KillMode=process), and the agent takes them over again."""
    return systemd.Unit(
        AGENT_UNIT, "Dockyard node agent", (str(python), "-m", "dockyard.agent.main"),
        environment_file=AGENT_ENV, working_directory=launch.state_dir,
        after=("network-online.target", "docker.service"),
        wants=("network-online.target", "docker.service"), kill_mode="process",
    )


def registry_unit(program: Path, config: Path) -> systemd.Unit:
    return systemd.Unit(REGISTRY_UNIT, "Dockyard image registry",
                        (str(program), "serve", str(config)),
                        environment_file=None, working_directory=config.parent)


def setting_variables(settings_class: type[BaseSettings]) -> frozenset[str]:
    """The environment variables a settings class reads, and only those: the CLI's own
    DOCKYARD_TOKEN, say, is no setting of the services and is never copied to them."""
    prefix = settings_class.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(f"{prefix}{name}".upper())
    return frozenset(names)


def control_plane_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The control plane's settings as this shell has them, with the data directory fixed."""
    wanted = setting_variables(Settings)
    values = {name: value for name, value in environ.items() if name in wanted}
    return {**values, "DOCKYARD_DATA_DIR": str(settings.data_dir)}


def agent_environment(launch: local.AgentLaunch, environ: Mapping[str, str]) -> dict[str, str]:
    wanted = AgentSettings.variables()
    own = {name: value for name, value in environ.items() if name in wanted}
    return local.agent_env(launch, own)


def _unit_file(root: Path, unit: systemd.Unit) -> FileToWrite:
    return FileToWrite(systemd.unit_path(root, unit.name), systemd.render_unit(unit))


def _env_file(root: Path, path: Path, values: Mapping[str, str]) -> FileToWrite:
    names = "".join(f"{name}=<hidden>\n" for name in sorted(values))
    return FileToWrite(under(root, path), systemd.render_environment_file(values), 0o600, names)


@dataclass(frozen=True)
class Machine:
    """What a plan is built from: the settings, the Python Dockyard runs on, the shell's
    environment, and the root the system lives under (`/`, or an image being built)."""

    settings: Settings
    python: Path
    environ: Mapping[str, str]
    root: Path = Path("/")


def agent_files(machine: Machine, launch: local.AgentLaunch) -> list[FileToWrite]:
    """The agent's unit and environment file: the same for this machine and for the image
    or user-data of a provisioned server."""
    values = agent_environment(launch, machine.environ)
    return [_unit_file(machine.root, agent_unit(launch, machine.python)),
            _env_file(machine.root, AGENT_ENV, values)]


def node_install_plan(machine: Machine, agent_key: bytes,
                      launch: local.AgentLaunch = PROVISIONED_AGENT) -> InstallPlan:
    """A provisioned server's agent, holding the key derived from its workspace's agent
    secret: what its user-data or snapshot recipe installs."""
    key_file = FileToWrite(under(machine.root, launch.state_dir / "agent.key"),
                           agent_key.hex(), 0o600, shown="<hidden>")
    return InstallPlan((under(machine.root, launch.state_dir),),
                       (*agent_files(machine, launch), key_file),
                       _commands(systemd.enable_commands([AGENT_UNIT], machine.root)))


def node_install_commands(root: Path = Path("/")) -> list[list[str]]:
    """The commands a provisioned server's user-data runs once the files are written."""
    return systemd.enable_commands([AGENT_UNIT], root)


def _commands(argvs: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(argv) for argv in argvs)


def _control_plane_parts(machine: Machine) -> InstallPlan:
    settings = machine.settings
    files = [_unit_file(machine.root, unit)
             for unit in control_plane_units(settings, machine.python)]
    values = control_plane_environment(settings, machine.environ)
    files.append(_env_file(machine.root, CONTROL_PLANE_ENV, values))
    return InstallPlan((under(machine.root, settings.data_dir),), tuple(files), ())


def _node_parts(machine: Machine) -> InstallPlan:
    """This machine's agent, as `dockyard up --local-node` runs it, and a loopback registry
    (see `_runs_own_registry`); the agent's key must be there already."""
    launch = launch_of(machine.settings)
    key_file = under(machine.root, launch.state_dir / "agent.key")
    if not key_file.is_file():
        raise InstallError(
            f"the agent's key {key_file} is missing: run `dockyard up --local-node` once "
            "(it writes the key and adds this machine as server 'local'), then "
            "`dockyard down --local-node`, then install")
    files = agent_files(machine, launch)
    directories = [under(machine.root, launch.state_dir)]
    if _runs_own_registry(machine):
        files += _registry_files(machine)
    return InstallPlan(tuple(directories), tuple(files), ())


def _runs_own_registry(machine: Machine) -> bool:
    """A loopback registry gets a unit, as `dockyard up` starts one, unless one answers there
    already on this machine (Debian's own docker-registry service, say): that one is used."""
    address = machine.settings.registry
    if address.rsplit(":", 1)[0] not in registry.LOOPBACK_HOSTS:
        return False
    return machine.root != Path("/") or not registry.answers(address)


def _registry_files(machine: Machine) -> list[FileToWrite]:
    program = shutil.which(registry.PROGRAM)
    if program is None:
        raise InstallError(f"{registry.PROGRAM} is not installed: apt-get install "
                           f"{registry.PROGRAM} (or set DOCKYARD_REGISTRY to one that runs)")
    root_dir = machine.settings.data_dir / "registry"
    config = root_dir / "config.yml"
    text = registry_config(root_dir / "data", machine.settings.registry)
    return [_unit_file(machine.root, registry_unit(Path(program), config)),
            FileToWrite(under(machine.root, config), text)]


def plan_install(machine: Machine, roles: Roles) -> InstallPlan:
    parts = [builder(machine) for wanted, builder in
             ((roles.control_plane, _control_plane_parts), (roles.node, _node_parts)) if wanted]
    files = tuple(file for part in parts for file in part.files)
    names = unit_names(InstallPlan((), files, ()))
    _refuse_installed(machine.root, names)
    return InstallPlan(tuple(d for part in parts for d in part.directories), files,
                       _commands(systemd.enable_commands(names, machine.root)))


def _refuse_installed(root: Path, names: Sequence[str]) -> None:
    """Installing again would overwrite environment files a person may have edited."""
    for name in names:
        if systemd.unit_path(root, name).exists():
            raise InstallError(
                f"{name} is installed already: to change its settings, edit the files in "
                f"{under(root, CONFIG_DIR)} and run systemctl restart {name}; to install "
                "it anew, dockyard uninstall first")


def unit_names(plan: InstallPlan) -> list[str]:
    return [file.path.name for file in plan.files if file.path.name.endswith(".service")]


def plan_uninstall(machine: Machine, roles: Roles) -> UninstallPlan:
    """Stop and disable the units of these roles that are installed, then remove them and
    their environment files; the data directories stay."""
    names = [*((API_UNIT, WORKER_UNIT, RELAY_UNIT) if roles.control_plane else ()),
             *((AGENT_UNIT, REGISTRY_UNIT) if roles.node else ())]
    installed = [name for name in names if systemd.unit_path(machine.root, name).is_file()]
    env_files = [*([CONTROL_PLANE_ENV] if roles.control_plane else []),
                 *([AGENT_ENV] if roles.node else [])]
    removals = [systemd.unit_path(machine.root, name) for name in installed]
    removals += [under(machine.root, path) for path in env_files
                 if under(machine.root, path).is_file()]
    if not installed:
        return UninstallPlan((), tuple(removals), ())
    return UninstallPlan(_commands(systemd.disable_commands(installed, machine.root)),
                         tuple(removals), _commands(systemd.reload_commands(machine.root)))


def require_root(root: Path, euid: int | None = None) -> None:
    """Writing into /etc and running systemctl there is root's."""
    if root == Path("/") and (os.geteuid() if euid is None else euid) != 0:
        raise InstallError("installing into / needs root: sudo .venv/bin/dockyard install "
                           "(or --prefix DIR, as anyone)")


def require_systemd(root: Path, booted_marker: Path = BOOTED_MARKER) -> None:
    """Installing into this machine needs systemd running as its init system."""
    if root != Path("/") or booted_marker.is_dir():
        return
    raise InstallError(
        f"systemd is not the init system here (PID 1 is {_pid1_name()}), so nothing would "
        "start the units: boot this machine with systemd, or run Dockyard without a service "
        "manager with ./scripts/up, or write the units into an image with --prefix DIR")


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared
    try:
        with socket.create_connection((target, port), timeout=1):
            return True
    except OSError:
        return False


def _addresses(machine: Machine, roles: Roles) -> list[tuple[str, int, str]]:
    """Where the units of these roles will listen: (host, port, for whom)."""
    settings = machine.settings
    found = [(settings.host, settings.port, "the API")] if roles.control_plane else []
    if roles.node:
        launch = launch_of(settings)
        found += [(launch.host, launch.port, "the agent"),
                  ("0.0.0.0", launch.nginx_http_port, "the agent's nginx"),  # noqa: S104
                  ("0.0.0.0", launch.nginx_https_port, "the agent's nginx")]  # noqa: S104
    return found


def require_free(machine: Machine, roles: Roles) -> None:
    """Installing into this machine: nothing listens yet where a unit will (a control plane
    `dockyard up` started, the nginx service a distribution starts with its package), or
    that unit would fail to start, again and again."""
    if machine.root != Path("/"):
        return
    taken = [f"{host}:{port} (for {whom})" for host, port, whom
             in _addresses(machine, roles) if _listening(host, port)]
    if taken:
        raise InstallError(f"something already listens on {', '.join(taken)}: stop it first "
                           "(`dockyard down --local-node` stops what `dockyard up` started; "
                           "a distribution's own nginx: systemctl disable --now nginx), "
                           "then install")


def _pid1_name() -> str:
    try:
        return Path("/proc/1/comm").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def run_checked(argv: Sequence[str]) -> object:
    """The default runner: the command must succeed (CommandFailed says how it did not)."""
    return process.check(argv, timeout=120)


def apply_install(plan: InstallPlan, run: Runner = run_checked) -> None:
    for directory in plan.directories:  # Dockyard's own: the master key and database live there
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    for file in plan.files:
        _write(file)
    for argv in plan.commands:
        run(argv)


def apply_uninstall(plan: UninstallPlan, run: Runner = run_checked) -> None:
    for argv in plan.before:
        run(argv)
    for path in plan.removals:
        path.unlink(missing_ok=True)
    for argv in plan.after:
        run(argv)


def _write(file: FileToWrite) -> None:
    """Atomically, with its mode from the start (an environment file is never readable by
    others, not even for a moment)."""
    file.path.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.path.with_name(f".{file.path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file.mode)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), file.mode)
        handle.write(file.text)
    os.replace(temporary, file.path)
