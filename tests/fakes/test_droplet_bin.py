"""The fake droplet's `systemctl` reads back exactly what providers/systemd writes (command
lines, environment files), and `apt-get` answers as the contract says; run as programs or
loaded from their files (they are scripts, not modules)."""

from __future__ import annotations

import subprocess
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest

from dockyard.providers import systemd
from tests.fakes import droplet_init
from tests.fakes.droplet_hosts import PROGRAMS

TRICKY = ["plain", "two words", 'a "quote"', "back\\slash", "100%", "$HOME", "${X}", "",
          "mix '\" $$ %% \\\\", "`tick`"]


@pytest.fixture(scope="module")
def systemctl() -> ModuleType:
    loader = SourceFileLoader("fake_systemctl", str(PROGRAMS / "systemctl"))
    module = ModuleType(loader.name)
    loader.exec_module(module)
    return module


def test_command_lines_read_back_as_written(systemctl: ModuleType) -> None:
    argv = ["/usr/bin/python3", *TRICKY]
    assert systemctl.words(systemd.command_line(argv)) == argv


def test_environment_files_read_back_as_written(systemctl: ModuleType, tmp_path: Path) -> None:
    values = {f"V{i}": value for i, value in enumerate(TRICKY)}
    (tmp_path / "env").write_text(systemd.render_environment_file(values))
    assert systemctl.environment_file(str(tmp_path / "env")) == values
    assert systemctl.environment_file(f"-{tmp_path / 'missing'}") == {}


def apt_get(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PROGRAMS / "apt-get"), *argv], capture_output=True, text=True,
                          check=False)


def test_apt_get_installs_only_what_this_machine_has() -> None:
    assert apt_get("update").returncode == 0
    assert apt_get("install", "-y", "--no-install-recommends", "dpkg").returncode == 0
    missing = apt_get("install", "-y", "dpkg", "dockyard-no-such-package")
    assert missing.returncode == 100
    assert "dockyard-no-such-package" in missing.stderr
    assert "dpkg " not in missing.stderr
    assert apt_get("remove", "dpkg").returncode == 100


@pytest.mark.parametrize(("text", "reason"), [
    ("runcmd: []\n", "must start with '#cloud-config'"),
    ("#cloud-config\nbootcmd: [[ls]]\n", "unknown cloud-config keys: bootcmd"),
    ("#cloud-config\nruncmd:\n- echo hi\n", "must be a non-empty list of strings"),
    ("#cloud-config\nwrite_files:\n- {path: /opt/dockyard/x, owner: root}\n", "nothing else"),
    ("#cloud-config\nwrite_files:\n- {path: /opt/dockyard/x, permissions: '0777'}\n",
     "permissions must be one of"),
    ("#cloud-config\nwrite_files:\n- {path: /opt/dockyard/../../etc/x}\n", "without '..'"),
    ("#cloud-config\nwrite_files:\n- {path: /root/.ssh/authorized_keys}\n", "only under"),
])
def test_user_data_the_fake_refuses(text: str, reason: str) -> None:
    with pytest.raises(droplet_init.CloudConfigError, match=reason):
        droplet_init.parse(text)


def test_user_data_is_read_in_order() -> None:
    config = droplet_init.parse(
        "#cloud-config\nwrite_files:\n- {path: /etc/dockyard/a, content: aGk=, encoding: b64,"
        " permissions: '0600'}\nruncmd:\n- [mkdir, -p, /opt/dockyard]\n- [ls]\n")
    assert config.write_files == (droplet_init.FileToWrite("/etc/dockyard/a", b"hi", 0o600),)
    assert config.runcmd == (("mkdir", "-p", "/opt/dockyard"), ("ls",))


def test_files_are_not_written_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "link").symlink_to("/etc")
    with pytest.raises(droplet_init.CloudConfigError, match="is a symlink"):
        droplet_init.host_path(tmp_path, "/opt/dockyard/link/passwd")
    assert droplet_init.host_path(tmp_path, "/opt/dockyard/a/b") == tmp_path / "opt" / "a" / "b"
