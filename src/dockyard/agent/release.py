"""The agent's code as a release: its version, the bundle a node installs, and the node layout.

A version is "<package version>+<digest of the code>", so the same code always has the same
version and any change to it makes another. A bundle is a deterministic tar.gz of that code,
unpacked on a node under `releases/<version>/` and put on the agent's PYTHONPATH.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

import dockyard

UPGRADE_PATH = "/agent/upgrade"  # where the control plane posts a release bundle
AGENT_HOME = Path("/opt/dockyard/agent")
CODE_SUFFIXES = frozenset({".py", ".j2", ".sh", ".txt"})
CODE_NAMES = frozenset({"py.typed"})
SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_TOP_DIRS = frozenset({"web"})
KEEP_RELEASES = 3


class UnsafeBundle(ValueError):
    """The archive holds a member that must not be unpacked (absolute, `..`, link, device)."""


@dataclass(frozen=True)
class Layout:
    """Where a node keeps the agent's releases: `home` is AGENT_HOME on a provisioned server."""

    home: Path = AGENT_HOME

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def current(self) -> Path:
        return self.home / "current"

    @property
    def previous(self) -> Path:
        return self.home / "previous"

    def release(self, version: str) -> Path:
        return self.releases / version


def replace_link(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically: a new symlink renamed over the old one."""
    staged = link.with_name(f".{link.name}.new")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    staged.replace(link)


def link_target(link: Path) -> Path | None:
    """Where the symlink `link` leads (resolved); None when it is no symlink."""
    return link.resolve() if link.is_symlink() else None


@dataclass(frozen=True)
class Bundle:
    version: str
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)


# Resolved once: on a node `current` moves to the next release while this code still runs.
_PACKAGE_DIR = Path(dockyard.__file__).resolve().parent


def package_dir() -> Path:
    """The directory of the running dockyard package (of its release, on a node)."""
    return _PACKAGE_DIR


def _is_code(relative: PurePosixPath) -> bool:
    if SKIPPED_DIRS.intersection(relative.parts) or relative.parts[0] in SKIPPED_TOP_DIRS:
        return False
    return relative.suffix in CODE_SUFFIXES or relative.name in CODE_NAMES


def code_files(root: Path) -> list[tuple[str, bytes]]:
    """(relative posix path, bytes) of every code file under `root`, sorted by path."""
    found = []
    for path in root.rglob("*"):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if path.is_file() and _is_code(relative):
            found.append((str(relative), path.read_bytes()))
    return sorted(found)


def digest(files: list[tuple[str, bytes]]) -> str:
    hasher = hashlib.sha256()
    for name, data in files:
        for part in (name.encode(), data):
            hasher.update(len(part).to_bytes(8, "big"))
            hasher.update(part)
    return hasher.hexdigest()


@functools.cache
def _version_of(root: Path) -> str:
    return f"{dockyard.__version__}+{digest(code_files(root))[:10]}"


def code_version(package: Path | None = None) -> str:
    """The version of the code under `package` (default: the running dockyard package)."""
    return _version_of((package or package_dir()).resolve())


def _metadata() -> bytes:
    return (f"Metadata-Version: 2.1\nName: dockyard\nVersion: {dockyard.__version__}\n").encode()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid = len(data), 0, 0, 0
    info.mode = 0o755 if name.endswith(".sh") else 0o644
    archive.addfile(info, io.BytesIO(data))


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
          tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as archive):
        for name, data in members:
            _add(archive, name, data)
    return raw.getvalue()


@functools.cache
def _bundle_of(root: Path) -> Bundle:
    version = _version_of(root)
    members = [(f"dockyard/{name}", data) for name, data in code_files(root)]
    members.append((f"dockyard-{version}.dist-info/METADATA", _metadata()))
    data = _tar_gz(members)
    return Bundle(version, data, hashlib.sha256(data).hexdigest())


def build_bundle(package: Path | None = None) -> Bundle:
    """The deterministic tar.gz of the code under `package` (default: the running package)."""
    return _bundle_of((package or package_dir()).resolve())


def current_bundle() -> Bundle:
    """The bundle of the code this process runs: what the control plane serves to its agents."""
    return build_bundle()


def check_member(member: tarfile.TarInfo) -> PurePosixPath:
    """The member's safe relative path; UnsafeBundle unless a plain file or directory inside."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UnsafeBundle(f"bundle member {member.name!r} is not a relative path inside it")
    if not (member.isfile() or member.isdir()):
        raise UnsafeBundle(f"bundle member {member.name!r} is not a regular file or directory")
    return path


def _checked(data: bytes) -> list[tuple[PurePosixPath, tarfile.TarInfo]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            return [(check_member(member), member) for member in archive]
    except (tarfile.TarError, EOFError, OSError) as error:
        raise UnsafeBundle(f"the bundle is not a readable tar.gz: {error}") from error


def unpack(data: bytes, target: Path) -> None:
    """Unpack the bundle `data` into the new directory `target`, refusing unsafe members."""
    checked = _checked(data)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for path, member in checked:
            _write(archive, member, target.joinpath(*path.parts))


def _write(archive: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
    if member.isdir():
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = archive.extractfile(member)
    assert source is not None  # a regular file always has content
    destination.write_bytes(source.read())
    destination.chmod(0o755 if member.mode & 0o100 else 0o644)


def _pins(name: str, extras: frozenset[str]) -> Iterator[tuple[str, frozenset[str]]]:
    from packaging.requirements import Requirement  # the control plane's dependency only

    for line in metadata.distribution(name).requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in extras | {""}):
            yield requirement.name, frozenset(requirement.extras)


def agent_requirements() -> list[str]:
    """Pinned "name==version" lines of the distributions dockyard needs at run time: the
    closure of its Requires-Dist, at the versions installed in this process."""
    pending: list[tuple[str, frozenset[str]]] = list(_pins("dockyard", frozenset()))
    seen: set[tuple[str, frozenset[str]]] = set()
    pinned: dict[str, str] = {}
    while pending:
        name, extras = pending.pop()
        key = (name.lower().replace("_", "-"), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pinned[distribution.metadata["Name"].lower()] = distribution.version
        pending.extend(_pins(name, extras))
    return sorted(f"{name}=={version}" for name, version in pinned.items())
