"""A Procfile's process types (`web`, `worker`, `clock`, ...) and its `release` command, as
Heroku reads it: one `type: command line` a line; blank lines and `#` comments are skipped."""

from __future__ import annotations

import re

from dockyard.kernel.errors import InvalidInput
from dockyard.models.deployment_plan import Processes

_LINE = re.compile(r"\s*([A-Za-z0-9_-]+)\s*:\s*(.*?)\s*")
_TYPE = re.compile(r"[a-z][a-z0-9_-]{0,29}")
RELEASE = "release"
# Lines `exec` cannot prefix: lists, pipes, subshells, leading assignments, builtins.
COMPOUND = re.compile(r"[;&|\n`()]|^\s*(?:\w+=|(?:exec|cd|if|for|while|until|case|\.)\s|[{!])")


def parse(text: str) -> dict[str, str]:
    """Process type -> command line, in the file's order; InvalidInput names a bad line."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None or not match.group(2):
            raise InvalidInput(f"Procfile line {number} is not `type: command`: {line[:80]!r}")
        kind = match.group(1)
        if not _TYPE.fullmatch(kind):
            raise InvalidInput(f"Procfile line {number}: process type {kind!r} must be lowercase "
                               "letters, digits, '_' and '-', starting with a letter")
        if kind in found:
            raise InvalidInput(f"Procfile line {number}: process type {kind!r} is defined twice")
        found[kind] = match.group(2)
    return found


def shell_argv(line: str) -> list[str]:
    """Exec-form argv for a shell command line; a simple command is `exec`ed, so the server
    itself is process 1 and receives SIGTERM (dash would otherwise stay in between)."""
    return ["sh", "-c", line if COMPOUND.search(line) else f"exec {line}"]


def processes(text: str | None) -> Processes:
    """The release's process types besides `web`, and its release command, each run through
    `sh -c` as Heroku does."""
    found = parse(text) if text is not None else {}
    release = found.pop(RELEASE, None)
    found.pop("web", None)
    return Processes(commands={kind: shell_argv(line) for kind, line in found.items()},
                     release=shell_argv(release) if release else None)
