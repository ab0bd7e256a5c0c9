"""Uploaded archives: received with a size limit, checked entry by entry before anything
is extracted, then unpacked into the app directory."""
from __future__ import annotations

import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import anyio

from dockyard.kernel.errors import DockyardError, InvalidInput

MB = 1024 * 1024
GiB = 1024 * MB
CHUNK = MB


class PayloadTooLarge(DockyardError):
    status_code = 413

    def __init__(self, limit: int, *, what: str = "archive",
                 setting: str = "DOCKYARD_MAX_ARCHIVE_BYTES") -> None:
        super().__init__(f"the {what} is over the limit of {_megabytes(limit)} MB ({limit} "
                         f"bytes); raise the limit with the setting {setting}")
        self.limit = limit


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f}".removesuffix(".0")


async def receive_archive(chunks: AsyncIterator[bytes], dest: Path, limit: int) -> Path:
    """Stream an upload to the file `dest`. Past `limit` bytes the partial file is deleted and
    PayloadTooLarge raised; writes run in a worker thread, never on the event loop."""
    received = 0
    try:
        async with await anyio.open_file(dest, "wb") as file:
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(limit)
                await file.write(chunk)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.Path(dest).unlink(missing_ok=True)
        raise
    return dest


# Archives: every entry is read and checked first; only a fully valid archive is extracted.

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_FOLLOWS = 40  # symlinks followed while resolving one path, as the Linux kernel allows
_MAX_LINK_TARGET = 4096
NOT_AN_ARCHIVE = "not a tar or zip archive (.tar, .tar.gz, .tar.bz2, .tar.xz or .zip)"


@dataclass(frozen=True)
class _Entry:
    raw: str  # the name as written in the archive, for messages
    name: str  # normalised: no empty or '.' components, '' for the root itself
    kind: Literal["file", "dir", "symlink", "hardlink"]
    size: int = 0
    link: str = ""  # a symlink's target as written; a hard link's normalised target
    executable: bool = False


def _bad(raw: str, problem: str) -> InvalidInput:
    return InvalidInput(f"archive entry {raw!r} {problem}")


def _clean_name(raw: str) -> str:
    """The normalised relative name of `raw`, or InvalidInput if it could leave the tree."""
    if "\x00" in raw:
        raise _bad(raw, "has a NUL character in its name")
    if "\\" in raw or _DRIVE.match(raw):
        raise _bad(raw, "uses a Windows path; archives must use relative '/' paths")
    if raw.startswith("/"):
        raise _bad(raw, "is an absolute path, which escapes the app directory")
    parts = _components(raw)
    if ".." in parts:
        raise _bad(raw, "escapes the app directory")
    return "/".join(parts)


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _stays_inside(path: str, links: Mapping[str, str]) -> bool:
    """Whether `path` resolves inside the tree when the archive's own symlinks are followed."""
    pending, resolved, follows = _components(path)[::-1], list[str](), 0
    while pending:
        part = pending.pop()
        if part == "..":
            if not resolved:
                return False
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is not None:
            follows += 1
            if follows > _MAX_FOLLOWS or target.startswith("/"):
                return False
            resolved.pop()
            pending.extend(_components(target)[::-1])
    return True


def _check_shape(entries: Sequence[_Entry], max_bytes: int) -> None:
    if not entries:
        raise InvalidInput("the archive is empty")
    kinds: dict[str, str] = {"": "dir"}  # only directories may repeat
    total = 0
    for entry in entries:
        earlier = kinds.get(entry.name)
        if earlier is not None and (earlier, entry.kind) != ("dir", "dir"):
            raise _bad(entry.raw, "appears twice or replaces the app directory itself")
        kinds[entry.name] = entry.kind
        total += entry.size
        if total > max_bytes:
            raise _bad(entry.raw, f"takes the unpacked size over {_megabytes(max_bytes)} MB")


def _validate(entries: Sequence[_Entry], max_bytes: int) -> None:
    """Every entry stays inside the tree, links included, within the size limit."""
    _check_shape(entries, max_bytes)
    links = {entry.name: entry.link for entry in entries if entry.kind == "symlink"}
    files: set[str] = set()
    for entry in entries:
        if entry.kind == "hardlink" and entry.link not in files:
            raise _bad(entry.raw, "is a hard link to something that is not a file before it")
        if not _stays_inside(entry.name, links):
            raise _bad(entry.raw, f"links to {entry.link!r}, outside the app directory"
                       if entry.kind == "symlink" else "escapes the app directory through a link")
        if entry.kind == "file":
            files.add(entry.name)


def _app_root(dest: Path) -> Path:
    """The single top-level directory (as in GitHub tarballs), else `dest` itself."""
    children = list(dest.iterdir())
    if len(children) == 1 and children[0].is_dir() and not children[0].is_symlink():
        return children[0]
    return dest


def unpack_archive(archive: Path, dest: Path, *, max_bytes: int = GiB,
                   max_entries: int = 100_000) -> Path:
    """Check every entry of a tar (plain, gzip, bz2, xz) or zip archive, told apart by content,
    then extract it into the new or empty directory `dest`. Returns the app root."""
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} must be a new or empty directory")
    with archive.open("rb") as file:
        is_zip = file.read(4) in _ZIP_MAGIC
    if is_zip:
        _unpack_zip(archive, dest, max_bytes, max_entries)
    else:
        _unpack_tar(archive, dest, max_bytes, max_entries)
    return _app_root(dest)


_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError)


def _tar_entry(member: tarfile.TarInfo) -> _Entry:
    raw, name = member.name, _clean_name(member.name)
    if member.isreg():
        return _Entry(raw, name, "file", member.size)
    if member.isdir():
        return _Entry(raw, name, "dir")
    if member.issym():
        return _Entry(raw, name, "symlink", link=member.linkname)
    if member.islnk():
        target = _components(member.linkname)
        if member.linkname.startswith("/") or ".." in target:
            raise _bad(raw, f"is a hard link to {member.linkname!r}, outside the app directory")
        return _Entry(raw, name, "hardlink", link="/".join(target))
    raise _bad(raw, "is a device, fifo or other special file; only files, directories and "
               "links are allowed")


def _tar_members(tar: tarfile.TarFile, max_entries: int) -> list[tarfile.TarInfo]:
    members = []
    for member in tar:
        members.append(member)
        if len(members) > max_entries:
            raise InvalidInput(f"the archive has more than {max_entries} entries")
    return members


def _check_tail(tar: tarfile.TarFile, budget: int) -> None:
    """tarfile takes a damaged header for the end of the archive; what follows the last entry
    must be the zero blocks that end a tar (reading them also checks a compressed stream)."""
    stream = tar.fileobj
    assert stream is not None
    stream.seek(tar.offset)
    while chunk := stream.read(CHUNK):
        budget -= len(chunk)
        if budget < 0 or chunk.count(0) != len(chunk):
            raise InvalidInput("the tar archive is damaged: there is data after its last "
                               "readable entry")


def _unpack_tar(archive: Path, dest: Path, max_bytes: int, max_entries: int) -> None:
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed below
    except _TAR_ERRORS as error:
        raise InvalidInput(NOT_AN_ARCHIVE) from error
    with tar:
        try:
            members = _tar_members(tar, max_entries)
            _validate([_tar_entry(member) for member in members], max_bytes)
            _check_tail(tar, max_bytes)
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
        except _TAR_ERRORS as error:
            raise InvalidInput(f"the tar archive could not be unpacked: {error}") from error


_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError,
               zlib.error)


def _zip_link(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    if info.file_size > _MAX_LINK_TARGET:
        raise _bad(info.orig_filename, "is a symlink with an over-long target")
    try:
        return archive.read(info).decode()
    except UnicodeDecodeError as error:
        raise _bad(info.orig_filename, "is a symlink whose target is not UTF-8") from error


def _zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Entry:
    raw = info.orig_filename  # zipfile cuts `filename` at a NUL; the original keeps it
    name = _clean_name(raw)
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    kind = stat.S_IFMT(mode)
    if info.is_dir() or kind == stat.S_IFDIR:
        return _Entry(raw, name, "dir")
    if kind == stat.S_IFLNK:
        return _Entry(raw, name, "symlink", link=_zip_link(archive, info))
    if kind not in (0, stat.S_IFREG):
        raise _bad(raw, "is a device, fifo or other special file; only files, directories "
                   "and links are allowed")
    return _Entry(raw, name, "file", info.file_size, executable=bool(mode & 0o111))


def _copy_bounded(source: IO[bytes], sink: IO[bytes], entry: _Entry) -> None:
    written = 0
    while chunk := source.read(CHUNK):
        written += len(chunk)
        if written > entry.size:
            raise _bad(entry.raw, "holds more data than its header says")
        sink.write(chunk)


def _extract_zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, entry: _Entry,
                       dest: Path) -> None:
    target = dest / entry.name
    if entry.kind == "dir":
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        return
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if entry.kind == "symlink":
        target.symlink_to(entry.link)
        return
    with archive.open(info) as source, target.open("xb") as sink:  # "x": never through a link
        _copy_bounded(source, sink, entry)
    target.chmod(0o755 if entry.executable else 0o644)


def _unpack_zip(archive: Path, dest: Path, max_bytes: int, max_entries: int) -> None:
    try:
        zipped = zipfile.ZipFile(archive)
    except _ZIP_ERRORS as error:
        raise InvalidInput(NOT_AN_ARCHIVE) from error
    with zipped:
        infos = zipped.infolist()
        if len(infos) > max_entries:
            raise InvalidInput(f"the archive has more than {max_entries} entries")
        try:
            entries = [_zip_entry(zipped, info) for info in infos]
            _validate(entries, max_bytes)
            dest.mkdir(parents=True, exist_ok=True)
            for info, entry in zip(infos, entries, strict=True):
                _extract_zip_entry(zipped, info, entry, dest)
        except _ZIP_ERRORS as error:
            raise InvalidInput(f"the zip archive could not be unpacked: {error}") from error
