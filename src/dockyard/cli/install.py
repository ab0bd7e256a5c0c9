"""`dockyard install` and `dockyard uninstall`: Dockyard under systemd on this machine."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.client import CliError
from dockyard.cli.output import done
from dockyard.kernel.settings import Settings

if TYPE_CHECKING:
    from dockyard.core import install as installer
    from dockyard.core.install import Machine, Roles

ControlPlane = Annotated[bool, typer.Option(
    "--control-plane", help="The API, the worker (and the relay with Redis).")]
Node = Annotated[bool, typer.Option(
    "--node", help="This machine's node agent (and the loopback image registry).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print what would be done; do nothing.")]
Prefix = Annotated[Path, typer.Option(
    "--prefix", help="The root to install into: `/`, or an image's root (enabled for its "
    "boot with `systemctl --root`, not started).")]


@contextmanager
def _as_cli_errors() -> Iterator[None]:
    """A setting systemd cannot carry (say, a newline in a path) is the user's to fix."""
    from dockyard.providers.systemd import UnitValueError

    try:
        yield
    except UnitValueError as exc:
        raise CliError(str(exc)) from None


def _machine(prefix: Path) -> Machine:
    from dockyard.core.install import Machine

    return Machine(Settings(), Path(sys.executable), dict(os.environ), prefix.absolute())


def _roles(control_plane: bool, node: bool) -> Roles:
    from dockyard.core.install import Roles

    either = control_plane or node
    return Roles(control_plane or not either, node or not either)


def install(control_plane: ControlPlane = False, node: Node = False, dry_run: DryRun = False,
            prefix: Prefix = Path("/")) -> None:
    """Run Dockyard under systemd here: started at boot, restarted after a crash.

    Writes the units and their environment files (0600), then enables and starts them.
    Without --control-plane or --node: both."""
    from dockyard.core import install as installer

    machine, roles = _machine(prefix), _roles(control_plane, node)
    with _as_cli_errors():
        plan = installer.plan_install(machine, roles)
    if dry_run:
        done("\n".join(describe_install(plan)))
        return
    installer.require_root(machine.root)
    installer.require_systemd(machine.root)
    installer.require_free(machine, roles)
    installer.apply_install(plan)
    names = installer.unit_names(plan)
    if machine.root != Path("/"):
        done(f"Written into {machine.root} and enabled for its boot: {', '.join(names)}.")
        return
    done(f"Installed, enabled and started: {', '.join(names)} "
         f"(see: systemctl status {' '.join(names)}).")


def uninstall(control_plane: ControlPlane = False, node: Node = False, dry_run: DryRun = False,
              prefix: Prefix = Path("/")) -> None:
    """Stop, disable and remove Dockyard's systemd units; the data stays.

    Their environment files go too. Without --control-plane or --node: both."""
    from dockyard.core import install as installer

    machine = _machine(prefix)
    plan = installer.plan_uninstall(machine, _roles(control_plane, node))
    if dry_run:
        done("\n".join(describe_uninstall(plan)))
        return
    installer.require_root(machine.root)
    installer.require_systemd(machine.root)
    installer.apply_uninstall(plan)
    done(f"Removed {len(plan.removals)} files; the data directories are kept.")


def describe_install(plan: installer.InstallPlan) -> list[str]:
    """What `--dry-run` prints: every file (an environment file's names only) and command."""
    lines = [f"would create directory {directory} (mode 0700)" for directory in plan.directories]
    for file in plan.files:
        lines.append(f"would write {file.path} (mode {file.mode:04o}):")
        shown = file.text if file.shown is None else file.shown
        lines += [f"    {line}" for line in shown.splitlines()]
    return lines + [f"would run: {' '.join(argv)}" for argv in plan.commands]


def describe_uninstall(plan: installer.UninstallPlan) -> list[str]:
    return [*(f"would run: {' '.join(argv)}" for argv in plan.before),
            *(f"would remove {path}" for path in plan.removals),
            *(f"would run: {' '.join(argv)}" for argv in plan.after)]
