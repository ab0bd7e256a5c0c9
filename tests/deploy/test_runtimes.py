"""The runtime version an app declares chooses its base; what nothing satisfies is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.deploy.build import _offline_settings
from dockyard.deploy.dockerfile import base_image_for, detect_stack
from dockyard.deploy.run import DeployFailed
from dockyard.deploy.runtimes import (
    Declared,
    declared_node,
    declared_python,
    offline_problem,
    public_image,
    releases_for,
    satisfies,
)
from dockyard.kernel.errors import InvalidInput
from dockyard.providers import images


@pytest.mark.parametrize(("version", "spec", "expected"), [
    ("3.11.2", "3.11", True), ("3.11.2", "3.12", False), ("3.11.2", ">=3.11", True),
    ("3.11.2", ">=3.12", False), ("3.11.2", ">= 3.9, <3.12", True),
    ("3.11.2", ">=3.9,<3.11", False), ("3.11.2", "~=3.10", True), ("3.11.2", "~=3.10.1", False),
    ("3.11.2", "==3.11.*", True), ("3.11.2", "!=3.11.*", False), ("3.11.2", "3.11.2", True),
    ("18.20.4", ">=18", True), ("18.20.4", "^20", False), ("18.20.4", "18.x", True),
    ("18.20.4", ">=16 <19", True), ("18.20.4", "^16 || ^18", True), ("18.20.4", "~18.19", False),
    ("18.20.4", "v18", True), ("20.19.2", "^20.0.0", True),
])
def test_satisfies(version: str, spec: str, expected: bool) -> None:
    assert satisfies(version, spec) is expected


@pytest.mark.parametrize("spec", ["latest", "lts/*", ">=", "3.11; rm -rf /"])
def test_an_unreadable_version_says_which_forms_work(spec: str) -> None:
    with pytest.raises(InvalidInput, match=r"use a form like '3\.12', '>=3\.11' or '\^20'"):
        satisfies("3.11.2", spec)


def test_public_images() -> None:
    assert public_image(Declared("python", "3.12.1", "x")) == "python:3.12.1-slim"
    assert public_image(Declared("python", ">=3.11", "x")) == "python:3.13-slim"
    assert public_image(Declared("python", "<3.11", "x")) == "python:3.10-slim"
    assert public_image(Declared("node", "^20", "x")) == "node:20-slim"
    with pytest.raises(InvalidInput, match=r"the app asks for Python >=4 \(x\); no python "
                                           r"image line satisfies it \(Dockyard knows 3.13,"):
        public_image(Declared("python", ">=4", "x"))


def test_the_offline_base_and_what_it_lacks() -> None:
    assert offline_problem(Declared("python", ">=3.11", "x"), "bookworm") is None
    assert offline_problem(Declared("node", ">=18", "x"), "bookworm") is None
    assert offline_problem(Declared("python", "3.12", ".python-version"), "bookworm") == (
        "the app asks for Python 3.12 (.python-version); the offline base, from Debian "
        "bookworm (the release this machine's mirror carries), has Python 3.11.2")
    assert offline_problem(Declared("node", "^20", "engines.node in package.json"),
                           "bookworm") == (
        "the app asks for Node.js ^20 (engines.node in package.json); the offline base, from "
        "Debian bookworm (the release this machine's mirror carries), has Node.js 18.20.4")


def test_where_apps_declare_versions(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nrequires-python = ">=3.10"\n')
    assert declared_python(tmp_path) == Declared(
        "python", ">=3.10", "requires-python in pyproject.toml")
    (tmp_path / "runtime.txt").write_text("python-3.11.9\n")
    assert declared_python(tmp_path) == Declared("python", "3.11.9", "runtime.txt")
    (tmp_path / ".python-version").write_text("# pyenv\n3.12\n")
    assert declared_python(tmp_path) == Declared("python", "3.12", ".python-version")
    (tmp_path / "package.json").write_text('{"engines": {"node": ">=18 <21"}}')
    assert declared_node(tmp_path) == Declared("node", ">=18 <21",
                                               "engines.node in package.json")


def test_the_declared_version_chooses_the_public_base(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("flask\n")
    (tmp_path / "app.py").write_text("")
    (tmp_path / ".python-version").write_text("3.11\n")
    stack = detect_stack(tmp_path)
    assert stack.runtime == Declared("python", "3.11", ".python-version")
    assert base_image_for(stack, None) == "python:3.11-slim"
    assert base_image_for(stack, "python:3.12-slim") == "python:3.12-slim"  # configured wins


# The offline base's Debian release, chosen by the declared version.

def test_another_release_from_the_same_mirror() -> None:
    sources = images.parse_one_line("deb http://m.invalid/debian bookworm main\n"
                                    "deb http://m.invalid/debian bookworm-updates main\n")
    assert images.mirror_and_suite(sources, None) == ("http://m.invalid/debian", "bookworm")
    assert images.mirror_and_suite(sources, "trixie") == ("http://m.invalid/debian", "trixie")
    assert releases_for(Declared("python", ">=3.12", "x")) == ["trixie"]
    assert releases_for(Declared("node", ">=12", "x")) == ["bullseye", "bookworm", "trixie"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKYARD_IMAGES_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DOCKYARD_IMAGES_SUITE", raising=False)
    return tmp_path


def test_the_machines_release_when_it_satisfies(cache: Path) -> None:
    python = images.RECIPES["python"]
    assert _offline_settings(python, None, "why").suite is None
    assert _offline_settings(python, Declared("python", ">=3.11", "x"), "why").suite is None


def test_a_release_that_satisfies_is_named_until_its_base_is_built(cache: Path) -> None:
    python, wants = images.RECIPES["python"], Declared("python", "3.13", ".python-version")
    own = images.cached_tarball(python, images.ImageSettings()).suite
    assert own == "bookworm", "this test expects a bookworm machine"
    with pytest.raises(DeployFailed) as refused:
        _offline_settings(python, wants, "could not pull python:3.13-slim (no registry)")
    assert str(refused.value) == (
        "could not pull python:3.13-slim (no registry), and the app asks for Python 3.13 "
        "(.python-version); the offline base, from Debian bookworm (the release this machine's "
        "mirror carries), has Python 3.11.2; Debian trixie would: build its base with "
        "`DOCKYARD_IMAGES_SUITE=trixie dockyard images bootstrap --image python`")
    images.cached_tarball(python, images.ImageSettings(suite="trixie")).path.write_bytes(b"")
    assert _offline_settings(python, wants, "why").suite == "trixie"


def test_a_version_no_release_has(cache: Path) -> None:
    with pytest.raises(DeployFailed, match=r"has Python 3\.11\.2\Z"):
        _offline_settings(images.RECIPES["python"], Declared("python", "3.8", "runtime.txt"),
                          "could not pull python:3.8-slim")
