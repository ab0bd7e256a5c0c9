"""The systemd renderer: exact unit texts, quoting that systemd reads back as meant (checked by
`systemd-analyze verify`, which runs systemd's own parser), and the systemctl commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.core import install
from dockyard.kernel.settings import Settings
from dockyard.providers import local, systemd

PYTHON = Path("/opt/dockyard/venv/bin/python")


def settings(**values: object) -> Settings:
    return Settings.model_validate({"data_dir": Path("/var/lib/dockyard"), "redis_url": None,
                                    **values})


def test_the_api_unit_migrates_first_restarts_always_and_drains_on_sigterm() -> None:
    api = install.control_plane_units(settings(), PYTHON)[0]
    assert systemd.render_unit(api) == """\
[Unit]
Description=Dockyard API
After=network-online.target postgresql.service redis-server.service
Wants=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=exec
EnvironmentFile=/etc/dockyard/dockyard.env
WorkingDirectory=/var/lib/dockyard
ExecStartPre=/opt/dockyard/venv/bin/python -m dockyard.cli.main migrate
ExecStart=/opt/dockyard/venv/bin/python -m dockyard.cli.main serve
Restart=always
RestartSec=2
KillSignal=SIGTERM
KillMode=control-group
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
"""


def test_the_relay_is_a_unit_only_when_redis_is_the_queue() -> None:
    names = [unit.name for unit in install.control_plane_units(settings(), PYTHON)]
    assert names == ["dockyard-api.service", "dockyard-worker.service"]
    with_redis = install.control_plane_units(settings(redis_url="redis://127.0.0.1/0"), PYTHON)
    assert [(unit.name, unit.exec_start[-1], unit.after[-1]) for unit in with_redis] == [
        ("dockyard-api.service", "serve", "redis-server.service"),
        ("dockyard-worker.service", "worker", "dockyard-api.service"),
        ("dockyard-relay.service", "relay", "dockyard-api.service"),
    ]


def test_the_agent_unit_comes_after_docker_and_leaves_its_nginx_running_on_stop() -> None:
    agent = install.agent_unit(install.PROVISIONED_AGENT, PYTHON)
    assert systemd.render_unit(agent) == """\
[Unit]
Description=Dockyard node agent
After=network-online.target docker.service
Wants=network-online.target docker.service
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=exec
EnvironmentFile=/etc/dockyard/agent.env
WorkingDirectory=/var/lib/dockyard-agent
ExecStart=/opt/dockyard/venv/bin/python -m dockyard.agent.main
Restart=always
RestartSec=2
KillSignal=SIGTERM
KillMode=process
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
"""


def test_words_are_quoted_so_systemd_reads_them_back_whole() -> None:
    assert systemd.quote_word("serve") == "serve"
    assert systemd.quote_word("two words") == '"two words"'
    assert systemd.quote_word("100%") == '"100%%"'
    assert systemd.quote_word("$HOME") == '"$$HOME"'
    assert systemd.quote_word('say "hi" \\ there') == '"say \\"hi\\" \\\\ there"'
    assert systemd.quote_word(";") == '";"'
    assert systemd.command_line(["/opt/a b/python", "-c", "x"]) == '"/opt/a b/python" -c x'
    assert systemd.command_line(["/opt/$x%/python"]) == '"/opt/$x%%/python"'


@pytest.mark.parametrize("argv", [["python"], ['/opt/"q"/python'], ["/opt/a\\b"], [],
                                  ["/bin/echo", "line\nbreak"]])
def test_commands_systemd_cannot_carry_are_refused(argv: list[str]) -> None:
    with pytest.raises(systemd.UnitValueError):
        systemd.command_line(argv)


def test_environment_files_quote_and_escape_every_value() -> None:
    text = systemd.render_environment_file({
        "DATABASE_URL": "postgresql://u:p$w\"d`x\\y@db/dockyard", "B": "plain", "C": "a b",
    })
    assert text == ('B="plain"\nC="a b"\n'
                    'DATABASE_URL="postgresql://u:p\\$w\\"d\\`x\\\\y@db/dockyard"\n')
    with pytest.raises(systemd.UnitValueError):
        systemd.render_environment_file({"A": "two\nlines"})
    with pytest.raises(systemd.UnitValueError):
        systemd.render_environment_file({"A=B": "x"})


def test_systemctl_commands_for_this_machine_and_for_an_image() -> None:
    names = ["dockyard-api.service", "dockyard-worker.service"]
    assert systemd.enable_commands(names, Path("/")) == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "dockyard-api.service", "dockyard-worker.service"],
    ]
    assert systemd.enable_commands(names, Path("/img")) == [
        ["systemctl", "--root=/img", "enable", "dockyard-api.service",
         "dockyard-worker.service"]]
    assert systemd.disable_commands(names, Path("/")) == [
        ["systemctl", "disable", "--now", "dockyard-api.service", "dockyard-worker.service"]]
    assert systemd.disable_commands(names, Path("/img")) == [
        ["systemctl", "--root=/img", "disable", "dockyard-api.service",
         "dockyard-worker.service"]]
    assert systemd.reload_commands(Path("/")) == [["systemctl", "daemon-reload"]]
    assert systemd.reload_commands(Path("/img")) == []
    assert install.node_install_commands() == [
        ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "dockyard-agent.service"]]


def _verify(unit_file: Path) -> str:
    """systemd's own parser on the file: nothing to say about it (a warning fails too)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd (scripts/test does)"
    result = subprocess.run([analyze, "verify", str(unit_file)], capture_output=True,
                            text=True, check=False, timeout=60)
    noise = "is added as a dependency to a non-existent unit"  # no running manager here
    said = [line for line in result.stderr.splitlines() if noise not in line]
    assert (result.returncode, said) == (0, []), result.stderr
    return result.stderr


def _odd_python(tmp_path: Path) -> Path:
    """This Python, reached through a directory whose name needs every kind of escaping
    systemd allows in a program's path."""
    odd = tmp_path / "odd dir %n $HOME"
    odd.mkdir()
    (odd / "python").symlink_to(os.path.realpath(sys.executable))
    return odd / "python"


def test_systemd_analyze_verify_accepts_every_rendered_unit(tmp_path: Path) -> None:
    python = _odd_python(tmp_path)
    state = settings(data_dir=tmp_path / "data 100%", redis_url="redis://127.0.0.1/0")
    units = [*install.control_plane_units(state, python),
             install.agent_unit(local.AgentLaunch(tmp_path / "agent $x", "127.0.0.1", 8421,
                                                  "unix:///var/run/docker.sock"), python),
             install.registry_unit(Path(shutil.which("docker-registry") or "/missing"),
                                   tmp_path / "registry" / "config.yml")]
    for unit in units:
        unit_file = tmp_path / unit.name
        unit_file.write_text(systemd.render_unit(unit))
        _verify(unit_file)


def test_verify_would_catch_a_path_quoted_wrongly(tmp_path: Path) -> None:
    """The check above can fail: the same unit with the `%` left single fails to verify."""
    python = _odd_python(tmp_path)
    unit = install.control_plane_units(settings(data_dir=tmp_path), python)[0]
    unit_file = tmp_path / unit.name
    unit_file.write_text(systemd.render_unit(unit).replace("%%n", "%n"))
    with pytest.raises(AssertionError, match="not executable"):
        _verify(unit_file)
