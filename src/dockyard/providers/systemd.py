"""systemd unit files, environment files and `systemctl` commands, rendered by pure functions.

Every value that lands in a unit is escaped for systemd's own parser: `%` (specifiers) and `$`
(variable expansion) are doubled, a command's words are double-quoted where needed, and
control characters are refused rather than written."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

UNIT_DIR = Path("etc/systemd/system")
SYSTEMCTL = "systemctl"
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_EXECUTABLE = re.compile(r"[\x00-\x1f\x7f\"'\\]")


class UnitValueError(ValueError):
    """A value that systemd could not read back as it was meant."""


@dataclass(frozen=True)
class Unit:
    """One long-running process as a systemd service."""

    name: str
    description: str
    exec_start: tuple[str, ...]
    environment_file: Path | None
    working_directory: Path
    exec_start_pre: tuple[tuple[str, ...], ...] = ()
    after: tuple[str, ...] = ("network-online.target",)
    wants: tuple[str, ...] = ("network-online.target",)
    # Seconds between SIGTERM and SIGKILL: the process's own graceful shutdown plus a margin.
    timeout_stop_seconds: int = 20
    # "process" leaves the children a process started (the agent's nginx) running on stop.
    kill_mode: str = "control-group"
    restart_seconds: int = 2


# A crash loop stops after this many starts within this window and shows as `failed`.
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_SECONDS = 60


def _refuse_control(value: str) -> str:
    if _CONTROL.search(value):
        raise UnitValueError(f"{value!r} holds a control character; systemd cannot carry it")
    return value


def _quoted(escaped: str) -> str:
    if _PLAIN_WORD.fullmatch(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_word(word: str) -> str:
    """One argument of an `ExecStart=` line, read back by systemd as exactly `word`."""
    return _quoted(_refuse_control(word).replace("%", "%%").replace("$", "$$"))


def quote_executable(path: str) -> str:
    """A command's program: absolute, and without the characters systemd refuses there
    (quotes, backslashes); `$` is not expanded in it, `%` is."""
    if not path.startswith("/") or _UNSAFE_EXECUTABLE.search(path):
        raise UnitValueError(f"systemd cannot run {path!r}: the program must be an absolute "
                             "path without quotes, backslashes or control characters")
    return _quoted(path.replace("%", "%%"))


def command_line(argv: Sequence[str]) -> str:
    if not argv:
        raise UnitValueError("a unit's command cannot be empty")
    return " ".join([quote_executable(argv[0]), *(quote_word(word) for word in argv[1:])])


def path_value(path: Path) -> str:
    """A path setting (`WorkingDirectory=`, `EnvironmentFile=`): specifiers escaped."""
    if not path.is_absolute():
        raise UnitValueError(f"{path} is not an absolute path")
    return _refuse_control(str(path)).replace("%", "%%")


def render_unit(unit: Unit) -> str:
    lines = [
        "[Unit]", f"Description={unit.description}",
        f"After={' '.join(unit.after)}", f"Wants={' '.join(unit.wants)}",
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL_SECONDS}",
        f"StartLimitBurst={START_LIMIT_BURST}", "",
        "[Service]", "Type=exec",
        *([] if unit.environment_file is None
          else [f"EnvironmentFile={path_value(unit.environment_file)}"]),
        f"WorkingDirectory={path_value(unit.working_directory)}",
        *(f"ExecStartPre={command_line(argv)}" for argv in unit.exec_start_pre),
        f"ExecStart={command_line(unit.exec_start)}",
        "Restart=always", f"RestartSec={unit.restart_seconds}",
        "KillSignal=SIGTERM", f"KillMode={unit.kill_mode}",
        f"TimeoutStopSec={unit.timeout_stop_seconds}", "",
        "[Install]", "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render_environment_file(values: Mapping[str, str]) -> str:
    """`NAME="value"` lines as systemd's `EnvironmentFile=` reads them, sorted by name."""
    lines = []
    for name, value in sorted(values.items()):
        if not _ENV_NAME.fullmatch(name):
            raise UnitValueError(f"{name!r} is not a variable name")
        escaped = re.sub(r'(["\\`$])', r"\\\1", _refuse_control(value))
        lines.append(f'{name}="{escaped}"')
    return "\n".join(lines) + "\n"


def unit_path(root: Path, name: str) -> Path:
    return root / UNIT_DIR / name


def _root_option(root: Path) -> list[str]:
    return [] if root == Path("/") else [f"--root={root}"]


def enable_commands(names: Sequence[str], root: Path) -> list[list[str]]:
    """After the files are written: on this machine, reload and start now and at boot; into
    another root (an image being built), only enable them for its boot."""
    if root == Path("/"):
        return [[SYSTEMCTL, "daemon-reload"], [SYSTEMCTL, "enable", "--now", *names]]
    return [[SYSTEMCTL, *_root_option(root), "enable", *names]]


def disable_commands(names: Sequence[str], root: Path) -> list[list[str]]:
    """Before the files are removed: stop them (on this machine) and drop them from boot."""
    now = ["--now"] if root == Path("/") else []
    return [[SYSTEMCTL, *_root_option(root), "disable", *now, *names]]


def reload_commands(root: Path) -> list[list[str]]:
    """After the files are removed: on this machine, forget them."""
    return [[SYSTEMCTL, "daemon-reload"]] if root == Path("/") else []
