"""The agent's release: versions follow the code, bundles are deterministic and unpack safely."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from dockyard.agent import release


def copy_package(tmp_path: Path, name: str = "a") -> Path:
    copy = tmp_path / name / "dockyard"
    shutil.copytree(release.package_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_version_is_the_base_and_a_digest_of_the_code(tmp_path: Path) -> None:
    copy = copy_package(tmp_path)
    assert release.code_version(copy) == release.code_version(copy_package(tmp_path, "same"))
    base, digest = release.code_version().split("+")
    assert len(digest) == 10
    changed = copy_package(tmp_path, "b")
    (changed / "agent" / "extra.py").write_text("X = 1\n")
    assert release.code_version(changed) != release.code_version(copy)
    assert release.code_version(changed).startswith(base + "+")


def test_files_that_are_not_code_do_not_change_the_version(tmp_path: Path) -> None:
    plain, copy = copy_package(tmp_path, "plain"), copy_package(tmp_path)
    (copy / "notes.md").write_text("not code")
    (copy / "web").mkdir()
    (copy / "web" / "bundle.txt").write_text("build output")
    assert release.code_version(copy) == release.code_version(plain)


def test_the_bundle_is_deterministic_and_holds_the_code_and_its_metadata(tmp_path: Path) -> None:
    bundle = release.build_bundle(copy_package(tmp_path))
    again = copy_package(tmp_path, "again")
    for path in again.rglob("*"):
        os.utime(path, (1, 1))
    assert bundle == release.build_bundle(again)  # another path, other times
    assert bundle.sha256 == hashlib.sha256(bundle.data).hexdigest()
    release.unpack(bundle.data, tmp_path / "release")
    unpacked = tmp_path / "release" / "dockyard"
    assert release.code_version(unpacked) == bundle.version
    metadata = tmp_path / "release" / f"dockyard-{bundle.version}.dist-info" / "METADATA"
    assert f"Version: {bundle.version.split('+')[0]}" in metadata.read_text()


def archive(*members: tarfile.TarInfo) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size))
    return raw.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize("unsafe", [
    member("/etc/cron.d/evil"), member("dockyard/../../evil.py"),
    member("dockyard/link.py", tarfile.SYMTYPE), member("dockyard/dev", tarfile.CHRTYPE),
])
def test_unsafe_members_are_refused_before_anything_is_written(
        tmp_path: Path, unsafe: tarfile.TarInfo) -> None:
    data = archive(member("dockyard/fine.py"), unsafe)
    with pytest.raises(release.UnsafeBundle, match="bundle member"):
        release.unpack(data, tmp_path / "release")
    assert not (tmp_path / "release").exists()


def test_what_is_not_a_tar_gz_is_refused(tmp_path: Path) -> None:
    with pytest.raises(release.UnsafeBundle, match=r"not a readable tar\.gz"):
        release.unpack(b"not an archive", tmp_path / "release")


def test_the_agent_requirements_are_pinned_and_include_the_closure() -> None:
    requirements = release.agent_requirements()
    names = {line.split("==")[0] for line in requirements}
    assert all("==" in line for line in requirements)
    assert {"fastapi", "uvicorn", "starlette", "pydantic", "cryptography"} <= names
    assert "dockyard" not in names
    assert "pytest" not in names
