"""What a fake droplet's cloud-init does with its user-data (the format of the issue 13
contract): `#cloud-config` YAML with only `write_files` and `runcmd`, anything else refused so a
test fails rather than silently ignoring a key. Files land in the droplet's own directories
(`PRIVATE_DIRS`); commands are argv lists, run by the caller in the droplet's namespaces."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml  # type: ignore[import-untyped]

HEADER = "#cloud-config\n"
# The droplet's own directories: where each is seen inside it -> its name in the droplet's root.
PRIVATE_DIRS = {"/etc/dockyard": "etc-dockyard", "/etc/systemd/system": "systemd",
                "/var/lib/dockyard-agent": "agent", "/opt/dockyard": "opt",
                "/run/dockyard-nginx": "run-nginx"}
WRITABLE = ("/etc/dockyard", "/etc/systemd/system", "/var/lib/dockyard-agent", "/opt/dockyard")
SNAPSHOTTED = WRITABLE  # /run is a tmpfs on a real server: gone after a power off
PERMISSIONS = {"0600": 0o600, "0644": 0o644, "0755": 0o755}
FILE_KEYS = {"path", "content", "permissions", "encoding"}


class CloudConfigError(ValueError):
    """User-data the fake will not run; the message says what is wrong."""


@dataclass(frozen=True)
class FileToWrite:
    path: str
    data: bytes
    mode: int


@dataclass(frozen=True)
class CloudConfig:
    write_files: tuple[FileToWrite, ...]
    runcmd: tuple[tuple[str, ...], ...]


def parse(user_data: str) -> CloudConfig:
    if not user_data.startswith(HEADER):
        raise CloudConfigError("user-data must start with '#cloud-config'")
    document = yaml.safe_load(user_data) or {}
    if not isinstance(document, dict):
        raise CloudConfigError("cloud-config must be a mapping")
    unknown = sorted(set(document) - {"write_files", "runcmd"})
    if unknown:
        raise CloudConfigError(f"unknown cloud-config keys: {', '.join(map(str, unknown))}")
    files = tuple(_file(entry) for entry in document.get("write_files") or [])
    return CloudConfig(files, tuple(_command(argv) for argv in document.get("runcmd") or []))


def _file(entry: Any) -> FileToWrite:
    if not isinstance(entry, dict) or not set(entry) <= FILE_KEYS or "path" not in entry:
        raise CloudConfigError(f"write_files entry {entry!r}: needs path, may have "
                               f"{', '.join(sorted(FILE_KEYS - {'path'}))}, nothing else")
    path, content = str(entry["path"]), str(entry.get("content", ""))
    if entry.get("permissions", "0644") not in PERMISSIONS:
        raise CloudConfigError(f"{path}: permissions must be one of {', '.join(PERMISSIONS)}")
    if entry.get("encoding") not in (None, "b64"):
        raise CloudConfigError(f"{path}: encoding must be b64 or absent")
    data = base64.b64decode(content) if entry.get("encoding") else content.encode()
    writable_dir(path)
    return FileToWrite(path, data, PERMISSIONS[entry.get("permissions", "0644")])


def _command(argv: Any) -> tuple[str, ...]:
    if not isinstance(argv, list) or not argv or not all(isinstance(w, str) for w in argv):
        raise CloudConfigError(f"runcmd entry {argv!r} must be a non-empty list of strings "
                               "(an argv; no shell)")
    return tuple(argv)


def writable_dir(path: str) -> str:
    """Which of the droplet's writable directories (WRITABLE) holds `path`."""
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts:
        raise CloudConfigError(f"{path}: must be an absolute path without '..'")
    for inside in WRITABLE:
        if pure.is_relative_to(inside):
            return inside
    raise CloudConfigError(f"{path}: the droplet may write only under {', '.join(WRITABLE)}")


def host_path(droplet_root: Path, path: str, lower: Path | None = None) -> Path:
    """Where `path` (as the droplet sees it) lives on this machine: in its own directory, over
    the snapshot's (`lower`) it was booted from. Refused through a symlink of either (which
    could lead out of the droplet, or be shadowed by a directory of its own)."""
    inside = writable_dir(path)
    relative = PurePosixPath(path).relative_to(inside)
    for base in (droplet_root, *([lower] if lower else [])):
        for part in (relative, *relative.parents[:-1]):
            if (base / PRIVATE_DIRS[inside] / part).is_symlink():
                raise CloudConfigError(f"{path}: {inside}/{part} is a symlink")
    return droplet_root / PRIVATE_DIRS[inside] / relative


def write_files(droplet_root: Path, files: tuple[FileToWrite, ...],
                lower: Path | None = None) -> None:
    for wanted in files:
        target = host_path(droplet_root, wanted.path, lower)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(wanted.data)
        target.chmod(wanted.mode)
