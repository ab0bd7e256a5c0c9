"""`dockyard install` / `uninstall`: into a prefix with the real `systemctl --root`, as a user
runs them, and the library's plan carried out through an injected runner."""

from __future__ import annotations

import socket
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi import FastAPI

from dockyard.agent import auth
from dockyard.core import install
from dockyard.kernel.settings import Settings
from dockyard.providers import systemd
from tests.live import clean_environ, dockyard, ok, one_line_error, serving
from tests.pg import free_port

DATA_DIR = Path("/var/lib/dockyard-install-test")
SECRET = "s3cret-db-password"
DATABASE_URL = f"postgresql://dockyard:{SECRET}@127.0.0.1/dockyard"
UNITS = ["dockyard-api.service", "dockyard-worker.service", "dockyard-agent.service",
         "dockyard-registry.service"]


def _env(**extra: str) -> dict[str, str]:
    return {**clean_environ(), "DOCKYARD_DATA_DIR": str(DATA_DIR),
            "DATABASE_URL": DATABASE_URL, "DOCKYARD_ADMIN_PASSWORD": "not-for-the-units",
            # The CLI's own credential is no setting of the services: never copied to them.
            "DOCKYARD_TOKEN": "dy_the-cli-token", "DOCKYARD_URL": "http://127.0.0.1:1",
            "DOCKYARD_LOCAL_HTTPS_PORT": "8443", "DOCKYARD_AGENT_POLL_SECONDS": "5",
            **extra}


def _with_agent_key(prefix: Path, data_dir: Path = DATA_DIR) -> Path:
    key = install.under(prefix, data_dir / "local-agent" / "agent.key")
    key.parent.mkdir(parents=True)
    key.write_text("ab" * 32)
    return key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _settings() -> Settings:
    return Settings.model_validate({"data_dir": DATA_DIR, "database_url": DATABASE_URL})


def test_install_into_a_prefix_writes_and_enables_the_units_and_uninstall_removes_them(
    tmp_path: Path,
) -> None:
    prefix = tmp_path / "image"
    key = _with_agent_key(prefix)
    output = ok(dockyard("install", "--prefix", str(prefix), env=_env()))
    assert output == f"Written into {prefix} and enabled for its boot: {', '.join(UNITS)}.\n"
    unit_dir = prefix / "etc/systemd/system"
    api = install.control_plane_units(_settings(), Path(sys.executable))[0]
    assert (unit_dir / "dockyard-api.service").read_text() == systemd.render_unit(api)
    assert sorted(p.name for p in (unit_dir / "multi-user.target.wants").iterdir()) == sorted(
        UNITS)
    assert (unit_dir / "multi-user.target.wants/dockyard-agent.service").readlink() == Path(
        "/etc/systemd/system/dockyard-agent.service")
    env_file = prefix / "etc/dockyard/dockyard.env"
    assert _mode(env_file) == 0o600
    assert env_file.read_text() == (f'DATABASE_URL="{DATABASE_URL}"\n'
                                    'DOCKYARD_AGENT_POLL_SECONDS="5"\n'
                                    f'DOCKYARD_DATA_DIR="{DATA_DIR}"\n'
                                    'DOCKYARD_LOCAL_HTTPS_PORT="8443"\n')
    assert (prefix / "etc/dockyard/agent.env").read_text() == (
        'DOCKYARD_AGENT_DOCKER_HOST="unix:///var/run/docker.sock"\n'
        'DOCKYARD_AGENT_HOST="127.0.0.1"\n'
        'DOCKYARD_AGENT_LOG_JSON="true"\n'
        'DOCKYARD_AGENT_NGINX_HTTPS_PORT="8443"\n'
        'DOCKYARD_AGENT_NGINX_HTTP_PORT="80"\n'
        'DOCKYARD_AGENT_PORT="8421"\n'
        f'DOCKYARD_AGENT_STATE_DIR="{DATA_DIR}/local-agent"\n')
    assert _mode(prefix / "etc/dockyard/agent.env") == 0o600
    assert _mode(install.under(prefix, DATA_DIR)) == 0o700
    assert "rootdirectory: " in install.under(prefix, DATA_DIR / "registry/config.yml").read_text()

    removed = ok(dockyard("uninstall", "--prefix", str(prefix), env=_env()))
    assert removed == "Removed 6 files; the data directories are kept.\n"
    assert sorted(p.name for p in unit_dir.iterdir()) == []
    assert not (prefix / "etc/dockyard/dockyard.env").exists()
    assert key.read_text() == "ab" * 32


def test_dry_run_shows_units_and_commands_but_no_secret_and_writes_nothing(
    tmp_path: Path,
) -> None:
    output = ok(dockyard("install", "--control-plane", "--dry-run", "--prefix", str(tmp_path),
                         env=_env()))
    assert SECRET not in output
    assert "    DATABASE_URL=<hidden>\n" in output
    assert "    DOCKYARD_DATA_DIR=<hidden>\n" in output
    assert f"    ExecStart={sys.executable} -m dockyard.cli.main serve\n" in output
    assert output.endswith(f"would run: systemctl --root={tmp_path} enable "
                           "dockyard-api.service dockyard-worker.service\n")
    assert list(tmp_path.iterdir()) == []
    on_this_machine = ok(dockyard("install", "--control-plane", "--dry-run", env=_env()))
    assert on_this_machine.endswith("would run: systemctl daemon-reload\nwould run: systemctl "
                                    "enable --now dockyard-api.service dockyard-worker.service\n")


def test_a_node_without_its_agent_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    refused = dockyard("install", "--node", "--prefix", str(tmp_path), env=_env())
    one_line_error(refused, "agent.key is missing", "run `dockyard up --local-node` once")
    assert list(tmp_path.iterdir()) == []


def test_a_setting_systemd_cannot_carry_is_one_clear_error(tmp_path: Path) -> None:
    refused = dockyard("install", "--control-plane", "--prefix", str(tmp_path),
                       env=_env(DOCKYARD_DATA_DIR="/var/lib/two\nlines"))
    one_line_error(refused, "control character")
    assert list(tmp_path.iterdir()) == []


class Recorder:
    """The runner seam: records each command and succeeds, as systemctl would."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> None:
        self.commands.append(list(argv))


def test_the_plan_runs_its_commands_through_the_runner_after_writing_the_files(
    tmp_path: Path,
) -> None:
    machine = install.Machine(_settings(), Path("/opt/dy/bin/python"), {}, tmp_path)
    _with_agent_key(tmp_path)
    plan = install.plan_install(machine, install.Roles(control_plane=False, node=True))
    ran = Recorder()
    install.apply_install(plan, ran)
    assert ran.commands == [["systemctl", f"--root={tmp_path}", "enable",
                             "dockyard-agent.service", "dockyard-registry.service"]]
    assert sorted(p.name for p in (tmp_path / "etc/systemd/system").iterdir()) == [
        "dockyard-agent.service", "dockyard-registry.service"]
    undone = Recorder()
    install.apply_uninstall(install.plan_uninstall(machine, install.Roles(False, True)), undone)
    assert undone.commands == [["systemctl", f"--root={tmp_path}", "disable",
                                "dockyard-agent.service", "dockyard-registry.service"]]
    assert list((tmp_path / "etc/systemd/system").iterdir()) == []


def test_this_machine_without_systemd_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(install.InstallError, match=r"systemd is not the init system here .*"
                       r"\./scripts/up.*--prefix DIR"):
        install.require_systemd(Path("/"), booted_marker=tmp_path / "run/systemd/system")
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    install.require_systemd(Path("/"), booted_marker=tmp_path / "run/systemd/system")
    install.require_systemd(tmp_path / "image", booted_marker=tmp_path / "nowhere")


def test_a_provisioned_server_gets_the_same_agent_unit_and_its_key(tmp_path: Path) -> None:
    machine = install.Machine(_settings(), Path("/opt/dy/bin/python"), {}, tmp_path)
    key = auth.derive_agent_key("workspace-secret")
    plan = install.node_install_plan(machine, key)
    agent = install.agent_unit(install.PROVISIONED_AGENT, Path("/opt/dy/bin/python"))
    unit, environment, key_file = plan.files
    assert unit == install.FileToWrite(
        tmp_path / "etc/systemd/system/dockyard-agent.service", systemd.render_unit(agent))
    assert 'DOCKYARD_AGENT_HOST="0.0.0.0"\n' in environment.text
    assert key_file == install.FileToWrite(tmp_path / "var/lib/dockyard-agent/agent.key",
                                           key.hex(), 0o600, shown="<hidden>")
    assert plan.commands == ((("systemctl", f"--root={tmp_path}", "enable",
                               "dockyard-agent.service"),))
    install.apply_install(plan, Recorder())
    assert _mode(key_file.path) == 0o600
    assert auth.KeyStore(key_file.path).key == key  # what the agent reads at start


def test_installing_here_is_refused_while_something_listens_where_a_unit_would(
    tmp_path: Path,
) -> None:
    """Say, the API and agent `dockyard up --local-node` started, or the nginx service a
    distribution starts on port 80 when nginx is installed: the units could not bind."""
    with socket.socket() as api, socket.socket() as agent, socket.socket() as edge:
        for listener in (api, agent, edge):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        settings = Settings.model_validate({
            "data_dir": tmp_path, "port": api.getsockname()[1],
            "local_agent_port": agent.getsockname()[1],
            "local_http_port": edge.getsockname()[1], "local_https_port": free_port(),
            "registry": f"127.0.0.1:{free_port()}"})
        here = install.Machine(settings, Path(sys.executable), {})
        with pytest.raises(install.InstallError) as refused:
            install.require_free(here, install.Roles(control_plane=True, node=True))
        assert str(refused.value) == (
            f"something already listens on 127.0.0.1:{settings.port} (for the API), "
            f"127.0.0.1:{settings.local_agent_port} (for the agent), "
            f"0.0.0.0:{settings.local_http_port} (for the agent's nginx): stop it first "
            "(`dockyard down --local-node` stops what `dockyard up` started; a distribution's "
            "own nginx: systemctl disable --now nginx), then install")
        install.require_free(here, install.Roles(control_plane=False, node=False))
        install.require_free(install.Machine(settings, Path(sys.executable), {}, tmp_path),
                             install.Roles(control_plane=True, node=True))
    install.require_free(here, install.Roles(control_plane=True, node=True))


def test_a_registry_already_answering_here_is_used_and_gets_no_unit(tmp_path: Path) -> None:
    """As `dockyard up` does: Debian's own docker-registry service, say, on 127.0.0.1:5000."""
    answering = FastAPI()
    answering.get("/v2/")(lambda: {})
    with serving(answering) as url:
        address = url.removeprefix("http://")
        settings = Settings.model_validate({"data_dir": tmp_path, "registry": address})
        _with_agent_key(Path("/"), settings.data_dir)
        here = install.Machine(settings, Path("/opt/dy/bin/python"), {})
        plan = install.plan_install(here, install.Roles(control_plane=False, node=True))
        assert install.unit_names(plan) == ["dockyard-agent.service"]
        image = install.Machine(settings, Path("/opt/dy/bin/python"), {}, tmp_path / "image")
        _with_agent_key(image.root, settings.data_dir)
        assert install.unit_names(install.plan_install(image, install.Roles(False, True))) == [
            "dockyard-agent.service", "dockyard-registry.service"]


@pytest.mark.parametrize("roles", [["--node"], ["--control-plane"], []])
def test_each_unit_finds_its_environment_file_whichever_roles_are_installed(
    tmp_path: Path, roles: list[str],
) -> None:
    """systemd refuses to start a unit whose EnvironmentFile= is missing."""
    _with_agent_key(tmp_path)
    ok(dockyard("install", *roles, "--prefix", str(tmp_path), env=_env(
        DOCKYARD_REGISTRY=f"127.0.0.1:{free_port()}")))
    units = list((tmp_path / "etc/systemd/system").glob("*.service"))
    assert units
    for unit in units:
        for line in unit.read_text().splitlines():
            if line.startswith("EnvironmentFile="):
                assert install.under(tmp_path, Path(line.split("=", 1)[1])).is_file(), unit


def test_installing_here_needs_root_and_into_an_image_does_not() -> None:
    with pytest.raises(install.InstallError, match=r"^installing into / needs root: "
                       r"sudo \.venv/bin/dockyard install"):
        install.require_root(Path("/"), euid=1000)
    install.require_root(Path("/"), euid=0)
    install.require_root(Path("/tmp/image"), euid=1000)


def test_installing_again_is_refused_so_an_edited_environment_file_is_never_overwritten(
    tmp_path: Path,
) -> None:
    ok(dockyard("install", "--control-plane", "--prefix", str(tmp_path), env=_env()))
    env_file = tmp_path / "etc/dockyard/dockyard.env"
    env_file.write_text(env_file.read_text() + 'DOCKYARD_KEEP_RELEASES="9"\n')
    again = dockyard("install", "--control-plane", "--prefix", str(tmp_path),
                     env=_env(DATABASE_URL="postgresql://other@db/other"))
    one_line_error(again, "dockyard-api.service is installed already",
                   f"edit the files in {env_file.parent} and run systemctl restart",
                   "dockyard uninstall first")
    assert 'DOCKYARD_KEEP_RELEASES="9"\n' in env_file.read_text()
    assert DATABASE_URL in env_file.read_text()
