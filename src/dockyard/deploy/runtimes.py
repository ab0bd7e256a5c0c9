"""The runtime version an app declares, and which bases satisfy it.

Python: `.python-version`, `runtime.txt` (`python-3.12.1`), `requires-python` in
pyproject.toml. Node: `engines.node` in package.json. Specifiers: a bare version (a prefix:
`3.12` is any 3.12.x), `==`, `!=`, `>=`, `>`, `<=`, `<`, `~=` (PEP 440), `^`, `~`, `x`/`*`
wildcards and `||` (npm), clauses joined by commas or spaces.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dockyard.kernel.errors import InvalidInput

Language = Literal["python", "node"]
PUBLIC: dict[Language, tuple[str, ...]] = {  # python:<v>-slim and node:<v>-slim, newest first
    "python": ("3.13", "3.12", "3.11", "3.10", "3.9"),
    "node": ("22", "20", "18"),
}
# What each Debian release's packages provide (the offline bases are built from one).
DEBIAN: dict[str, dict[Language, str]] = {
    "bullseye": {"python": "3.9.2", "node": "12.22.12"},
    "bookworm": {"python": "3.11.2", "node": "18.20.4"},
    "trixie": {"python": "3.13.5", "node": "20.19.2"},
}
_CLAUSE = re.compile(r"(==|!=|>=|<=|~=|>|<|=|\^|~)?v?([0-9]+(?:\.(?:[0-9]+|[xX*]))*)")
_LABEL = {"python": "Python", "node": "Node.js"}


@dataclass(frozen=True)
class Declared:
    language: Language
    spec: str
    source: str  # the file that says so

    def describe(self) -> str:
        return f"{_LABEL[self.language]} {self.spec} ({self.source})"


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    size = max(len(a), len(b))
    return a + (0,) * (size - len(a)), b + (0,) * (size - len(b))


def _clause(version: tuple[int, ...], op: str, wanted: tuple[int, ...]) -> bool:
    v, w = _padded(version, wanted)
    prefix = version[:len(wanted)] == wanted
    return {"": prefix, "=": prefix, "==": prefix, "!=": not prefix, ">=": v >= w, ">": v > w,
            "<=": v <= w, "<": v < w,
            "~=": v >= w and version[:max(len(wanted) - 1, 1)] == wanted[:max(len(wanted) - 1, 1)],
            "^": v >= w and version[:1] == wanted[:1],
            "~": v >= w and version[:min(len(wanted), 2)] == wanted[:min(len(wanted), 2)],
            }[op]


def satisfies(version: str, spec: str) -> bool:
    """Whether `version` (like '3.11.2') meets `spec`; InvalidInput if `spec` is not one."""
    numbers = _numbers(version)
    for group in spec.split("||"):
        text = re.sub(r"(==|!=|>=|<=|~=|>|<|=|\^|~)\s+", r"\1", group.strip())
        clauses = [c for c in re.split(r"[,\s]+", text) if c]
        if not clauses or any(_CLAUSE.fullmatch(c) is None for c in clauses):
            raise InvalidInput(f"cannot read the version {spec!r}; use a form like '3.12', "
                               "'>=3.11' or '^20'")
        parsed = [_CLAUSE.fullmatch(c) for c in clauses]
        if all(m is not None and _clause(numbers, m[1] or "", _numbers(m[2])) for m in parsed):
            return True
    return False


def public_image(declared: Declared) -> str:
    """The image of exactly the declared version, or the newest line that satisfies it."""
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+){0,2}", declared.spec):
        return f"{declared.language}:{declared.spec}-slim"
    for line in PUBLIC[declared.language]:
        if satisfies(f"{line}.999", declared.spec) or satisfies(f"{line}.0", declared.spec):
            return f"{declared.language}:{line}-slim"
    raise InvalidInput(f"the app asks for {declared.describe()}; no {declared.language} image "
                       f"line satisfies it (Dockyard knows {', '.join(PUBLIC[declared.language])})")


def offline_problem(declared: Declared, suite: str) -> str | None:
    """Why the offline base of `suite` cannot build the app, or None when it can."""
    provided = DEBIAN.get(suite, {}).get(declared.language)
    if provided is not None and satisfies(provided, declared.spec):
        return None
    has = f"{_LABEL[declared.language]} {provided}" if provided else "an unknown version"
    return (f"the app asks for {declared.describe()}; the offline base, from Debian {suite} "
            f"(the release this machine's mirror carries), has {has}")


def releases_for(declared: Declared) -> list[str]:
    """The Debian releases whose packages satisfy the declared version."""
    return [suite for suite, provided in DEBIAN.items()
            if satisfies(provided[declared.language], declared.spec)]


def _first_line(app_dir: Path, name: str) -> str | None:
    path = app_dir / name
    if path.is_symlink() or not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(errors="replace")[:4096].splitlines()]
    return next((line for line in lines if line and not line.startswith("#")), None)


def declared_python(app_dir: Path) -> Declared | None:
    version = _first_line(app_dir, ".python-version")
    if version:
        return Declared("python", version, ".python-version")
    runtime = _first_line(app_dir, "runtime.txt")
    if runtime:
        return Declared("python", runtime.removeprefix("python-"), "runtime.txt")
    path = app_dir / "pyproject.toml"
    if path.is_symlink() or not path.is_file():
        return None
    try:
        project = tomllib.loads(path.read_text(errors="replace")).get("project", {})
    except tomllib.TOMLDecodeError:
        return None  # detection reports the broken file
    spec = project.get("requires-python") if isinstance(project, dict) else None
    return Declared("python", spec, "requires-python in pyproject.toml") if isinstance(
        spec, str) and spec.strip() else None


def declared_node(app_dir: Path) -> Declared | None:
    path = app_dir / "package.json"
    if path.is_symlink() or not path.is_file():
        return None
    try:
        package = json.loads(path.read_text(errors="replace"))
    except ValueError:
        return None
    engines = package.get("engines") if isinstance(package, dict) else None
    spec = engines.get("node") if isinstance(engines, dict) else None
    return Declared("node", spec, "engines.node in package.json") if isinstance(
        spec, str) and spec.strip() else None
