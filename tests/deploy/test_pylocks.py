"""Lock files read as pins: Poetry's main group, uv's run-time closure with extras; dev
dependencies left out; markers kept; names pip cannot take refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.deploy.dockerfile import detect_stack
from dockyard.deploy.pylocks import poetry_pins, uv_pins
from dockyard.kernel.errors import InvalidInput

POETRY_APP = Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "poetry-flask"
UV_LOCK = """version = 1
requires-python = ">=3.11"

[[package]]
name = "shop"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "uvicorn", extra = ["standard"] }, { name = "fastapi" }]

[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "fastapi"
version = "0.111.0"
source = { registry = "https://index.invalid/simple" }
dependencies = [{ name = "colorama", marker = "sys_platform == 'win32'" }]

[[package]]
name = "uvicorn"
version = "0.30.1"
source = { registry = "https://index.invalid/simple" }

[package.optional-dependencies]
standard = [{ name = "uvloop", marker = "sys_platform != 'win32'" }, { name = "colorama" }]

[[package]]
name = "uvloop"
version = "0.23.0"
source = { registry = "https://index.invalid/simple" }

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://index.invalid/simple" }

[[package]]
name = "pytest"
version = "8.3.0"
source = { registry = "https://index.invalid/simple" }
"""


def test_uv_lock_pins_the_run_time_closure() -> None:
    assert uv_pins(UV_LOCK) == ("colorama==0.4.6", "fastapi==0.111.0", "uvicorn==0.30.1",
                                "uvloop==0.23.0; (sys_platform != 'win32')")


def test_uv_lock_without_its_project_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"uv\.lock does not name one project"):
        uv_pins(UV_LOCK.replace('source = { virtual = "." }', 'source = { registry = "x" }'))


def test_a_name_pip_cannot_take_is_refused() -> None:
    with pytest.raises(InvalidInput, match="names a package '--index-url=x'"):
        poetry_pins('[[package]]\nname = "--index-url=x"\nversion = "1"\ngroups = ["main"]\n')


def test_poetry_lock_made_by_poetry_pins_the_main_group() -> None:
    pins = poetry_pins((POETRY_APP / "poetry.lock").read_text())
    assert "flask==3.0.3" in pins
    assert "gunicorn==22.0.0" in pins
    assert not [pin for pin in pins if pin.startswith(("pytest", "pluggy", "iniconfig"))]


def test_a_lock_file_feeds_the_generated_install() -> None:
    stack = detect_stack(POETRY_APP)
    assert stack.install == "pyproject"
    assert stack.dependencies == poetry_pins((POETRY_APP / "poetry.lock").read_text())
    assert stack.notes[-1] == f"dependencies pinned by poetry.lock ({len(stack.dependencies)} " \
                              "packages)"
    assert stack.web_command == ["sh", "-c", "exec gunicorn --bind 0.0.0.0:$PORT app:app"]
