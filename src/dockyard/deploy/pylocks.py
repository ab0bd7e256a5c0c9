"""Python lock files read as pinned requirements (`name==version; marker`) for pip: Poetry's
`poetry.lock` (the main group) and uv's `uv.lock` (what the project needs at run time: its
dependencies and theirs, with the extras asked for; not its dev groups)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.kernel.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_VERSION = re.compile(r"[A-Za-z0-9.+!_-]+")
LOCK_FILES = ("uv.lock", "poetry.lock")


def _pin(name: Any, version: Any, markers: set[str | None]) -> str:
    if not (isinstance(name, str) and _NAME.fullmatch(name) and isinstance(version, str)
            and _VERSION.fullmatch(version)):
        raise InvalidInput(f"the lock file names a package {name!r} at version {version!r} "
                           "that pip cannot install by name")
    when = [marker for marker in markers if marker]
    if not when or None in markers:
        return f"{name}=={version}"
    return f"{name}=={version}; " + " or ".join(f"({marker})" for marker in sorted(when))


def _load(text: str, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"{name} is not valid TOML: {error}") from error


def poetry_pins(text: str) -> tuple[str, ...]:
    pins = []
    for package in _load(text, "poetry.lock").get("package", []):
        groups = package.get("groups") or [package.get("category", "main")]
        if "main" not in groups or package.get("optional"):
            continue
        marker = package.get("markers")
        marker = marker.get("main") if isinstance(marker, dict) else marker
        pins.append(_pin(package.get("name"), package.get("version"),
                         {marker if isinstance(marker, str) else None}))
    return tuple(pins)


def _edges(package: dict[str, Any], extras: list[str]) -> Iterator[dict[str, Any]]:
    yield from package.get("dependencies", [])
    optional = package.get("optional-dependencies", {})
    for extra in extras:
        yield from optional.get(extra, [])


def uv_pins(text: str) -> tuple[str, ...]:
    packages = {p.get("name"): p for p in _load(text, "uv.lock").get("package", [])}
    roots = [p for p in packages.values()
             if {"editable", "virtual"} & set(p.get("source", {}))]
    if len(roots) != 1:
        raise InvalidInput("uv.lock does not name one project of this directory")
    markers: dict[str, set[str | None]] = {}
    pending = [(edge, None) for edge in _edges(roots[0], [])]
    while pending:
        edge, inherited = pending.pop()
        name, marker = str(edge.get("name")), edge.get("marker") or inherited
        seen = markers.setdefault(name, set())
        if marker in seen or name not in packages:
            continue
        seen.add(marker)
        pending += [(child, marker) for child in _edges(packages[name], edge.get("extra", []))]
    return tuple(_pin(name, packages[name].get("version"), found)
                 for name, found in sorted(markers.items()) if name in packages)


def locked_pins(app_dir: Path) -> tuple[str, tuple[str, ...]] | None:
    """The first lock file present, and its pins."""
    for name in LOCK_FILES:
        path = app_dir / name
        if path.is_file() and not path.is_symlink():
            text = path.read_text(errors="replace")
            return name, uv_pins(text) if name == "uv.lock" else poetry_pins(text)
    return None
