"""The runtime version an app declares chooses its base; what nothing satisfies is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.deploy.dockerfile import base_image_for, detect_stack
from dockyard.deploy.runtimes import (
    Declared,
    declared_node,
    declared_python,
    offline_problem,
    public_image,
    satisfies,
)
from dockyard.kernel.errors import InvalidInput


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
