"""The cloud-config user-data: only write_files and runcmd, argv lists in the contract's order,
the three shapes (stock image, snapshot, snapshot build), values never able to break the YAML,
and DigitalOcean's 64 KiB limit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from dockyard.agent.settings import AgentSettings
from dockyard.core.install import FileToWrite, agent_environment
from dockyard.kernel.errors import InvalidInput
from dockyard.providers.cloudinit import (
    BootPlan,
    agent_launch,
    bundle_file,
    render_user_data,
    requirements_digest,
)
from dockyard.providers.systemd import render_environment_file
from tests.fakes import droplet_init

SHA = "ab" * 32
REQUIREMENTS = ("fastapi==0.115.0", "uvicorn==0.30.0")
KEY = FileToWrite(Path("/var/lib/dockyard-agent/agent.key"), "00ff", 0o600)
SERVER = BootPlan("https://dock.example.com", "0.1.0+abcdef0123", SHA, REQUIREMENTS, (KEY,))
BUILD = replace(SERVER, agent_files=(),
                build_done_url="https://dock.example.com/api/v1/infra/snapshots/builds/t/done")


def parsed(plan: BootPlan) -> dict[str, list]:
    text = render_user_data(plan)
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert list(document) == ["write_files", "runcmd"]
    assert all(isinstance(argv, list) and all(isinstance(a, str) for a in argv)
               for argv in document["runcmd"])
    return document


def programs(plan: BootPlan) -> list[str]:
    return [argv[0] for argv in parsed(plan)["runcmd"]]


def test_a_server_from_a_stock_image_installs_everything_then_starts_the_agent():
    document = parsed(SERVER)
    assert programs(SERVER) == [
        "apt-get", "apt-get", "python3", "/opt/dockyard/agent/venv/bin/pip", "curl",
        "sha256sum", "mkdir", "tar", "ln", "systemctl", "systemctl"]
    runcmd = document["runcmd"]
    assert runcmd[1][-5:] == ["docker.io", "nginx", "python3-venv", "curl", "ca-certificates"]
    assert runcmd[3][-2:] == list(REQUIREMENTS)
    assert runcmd[4][-1] == f"https://dock.example.com/api/v1/agent/bundle/{SHA}"
    assert "--fail" in runcmd[4]
    assert runcmd[8] == ["ln", "-sfn", "releases/0.1.0+abcdef0123", "/opt/dockyard/agent/current"]
    assert runcmd[-1] == ["systemctl", "enable", "--now", "docker.service",
                          "dockyard-agent.service"]
    files = {f["path"]: f for f in document["write_files"]}
    assert files["/var/lib/dockyard-agent/agent.key"]["permissions"] == "0600"
    checksum = files[f"{bundle_file('0.1.0+abcdef0123')}.sha256"]["content"]
    assert checksum == f"{SHA}  {bundle_file('0.1.0+abcdef0123')}\n"


def test_a_server_from_a_snapshot_installs_requirements_only_when_they_changed():
    same = replace(SERVER, from_snapshot=True,
                   snapshot_requirements_digest=requirements_digest(REQUIREMENTS))
    assert programs(same)[:2] == ["curl", "sha256sum"]
    changed = replace(same, snapshot_requirements_digest="0" * 64)
    assert programs(changed)[:2] == ["/opt/dockyard/agent/venv/bin/pip", "curl"]


def test_a_snapshot_build_holds_no_secret_and_reports_done_last():
    document = parsed(BUILD)
    assert [f["path"] for f in document["write_files"]] == [
        f"{bundle_file('0.1.0+abcdef0123')}.sha256"]
    assert "systemctl" not in programs(BUILD)
    assert document["runcmd"][-1] == ["curl", "--fail", "--silent", "--show-error", "--retry",
                                      "5", "-X", "POST", BUILD.build_done_url]


def test_values_that_look_like_yaml_stay_strings():
    tricky = FileToWrite(Path("/etc/dockyard/agent.env"), 'A="x: [1]"\n- no\n#c\n', 0o644)
    document = parsed(replace(SERVER, agent_files=(tricky,), requirements=("yes", "1.0")))
    assert document["write_files"][0]["content"] == tricky.text
    assert document["runcmd"][3][-2:] == ["yes", "1.0"]


def test_files_outside_the_agents_directories_are_refused():
    outside = FileToWrite(Path("/root/.ssh/authorized_keys"), "ssh-ed25519 AAAA", 0o600)
    with pytest.raises(ValueError, match="may not write /root"):
        render_user_data(replace(SERVER, agent_files=(outside,)))


def test_user_data_above_64_kib_is_refused():
    huge = FileToWrite(Path("/etc/dockyard/agent.env"), "x" * 70_000, 0o644)
    with pytest.raises(InvalidInput, match="at most 65536"):
        render_user_data(replace(SERVER, agent_files=(huge,)))


def test_a_plan_that_neither_starts_an_agent_nor_reports_a_build_is_refused():
    with pytest.raises(ValueError, match="starts the agent or reports"):
        render_user_data(replace(SERVER, agent_files=()))


@pytest.mark.parametrize("plan", [SERVER, BUILD], ids=["server", "snapshot-build"])
def test_the_fake_droplets_cloud_init_reads_every_shape(plan: BootPlan):
    config = droplet_init.parse(render_user_data(plan))
    assert config.runcmd == tuple(tuple(argv) for argv in parsed(plan)["runcmd"])
    assert {file.path for file in config.write_files} == {
        file["path"] for file in parsed(plan)["write_files"]}


def test_a_provisioned_agent_keeps_its_containers_from_the_metadata_service():
    values = agent_environment(agent_launch(), {})
    assert 'DOCKYARD_AGENT_BLOCK_METADATA="true"\n' in render_environment_file(values)
    assert AgentSettings.from_environment(values).block_metadata is True
    del values["DOCKYARD_AGENT_BLOCK_METADATA"]
    assert AgentSettings.from_environment(values).block_metadata is False
