"""Build parameters: root (a monorepo's subdirectory), dockerfile (another Dockerfile), build
arguments, and the limits a build runs under."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dockyard.agent.buildconfig import BuildOptions
from dockyard.deploy.build import _app_root, limit_failure
from dockyard.deploy.dockerfile import Stack, detect_stack
from dockyard.deploy.run import DeployFailed
from dockyard.deploy.sources import GENERATED_DOCKERFILE, build_context
from dockyard.kernel.errors import InvalidInput
from dockyard.kernel.settings import Settings
from dockyard.models.deploys import DeployParams


def test_root_is_a_directory_inside_the_source(tmp_path: Path) -> None:
    (tmp_path / "services" / "web").mkdir(parents=True)
    (tmp_path / "outside").symlink_to("/etc")
    assert _app_root(tmp_path, "services/web") == tmp_path / "services" / "web"
    assert _app_root(tmp_path, None) == tmp_path
    for root in ("outside", "services/api"):
        with pytest.raises(DeployFailed, match=f"root '{root}' is not a directory"):
            _app_root(tmp_path, root)


@pytest.mark.parametrize("root", ["../x", "a/../../b", "/etc", ".", "a//b", "a/\nb", ""])
def test_root_and_dockerfile_must_be_relative_paths_inside(root: str) -> None:
    for field in ("root", "dockerfile"):
        with pytest.raises(ValidationError, match=r"use a relative path inside the app|at least"):
            DeployParams.model_validate({field: root})


def test_a_named_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "web.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "requirements.txt").write_text("flask\n")
    assert detect_stack(tmp_path, "docker/web.Dockerfile") == Stack(
        "dockerfile", None, ["using the app's Dockerfile docker/web.Dockerfile"])
    assert build_context(tmp_path, tmp_path / "c.tar", None, "docker/web.Dockerfile") == \
        "docker/web.Dockerfile"
    with pytest.raises(InvalidInput, match=r"'docker/api\.Dockerfile' is not a file in the app"):
        detect_stack(tmp_path, "docker/api.Dockerfile")


def test_the_generated_dockerfiles_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / GENERATED_DOCKERFILE).write_text("FROM scratch\nCOPY . .\n")
    with pytest.raises(InvalidInput, match="is Dockyard's name; rename the Dockerfile"):
        build_context(tmp_path, tmp_path / "c.tar", None, GENERATED_DOCKERFILE)


def test_build_args() -> None:
    params = DeployParams.model_validate({"build_args": ["NODE_ENV=production", "EMPTY="]})
    assert BuildOptions(tuple(params.build_args or ())).engine_build_args() == {
        "NODE_ENV": "production", "EMPTY": ""}
    assert BuildOptions().engine_build_args() is None
    for bad in ("1X=a", "NOVALUE", "A=line\nbreak"):
        with pytest.raises(ValidationError, match="use KEY=value"):
            DeployParams.model_validate({"build_args": [bad]})


def test_limits() -> None:
    assert BuildOptions(memory_mb=512, cpus=2).container_limits(machine_cpus=8) == {
        "memory": 512 * 1024 * 1024, "memswap": 512 * 1024 * 1024, "cpusetcpus": "0-1"}
    assert BuildOptions(cpus=4).container_limits(machine_cpus=2) == {"cpusetcpus": "0-1"}
    assert BuildOptions().container_limits() is None
    settings = Settings()
    assert (settings.build_memory_mb, settings.build_cpus, settings.build_timeout_seconds) == (
        2048, 2, 1800)


def test_a_build_over_a_limit_says_which() -> None:
    settings = Settings(build_memory_mb=256, build_timeout_seconds=90)
    assert str(limit_failure(settings, None)) == (
        "the build took longer than its time limit of 90 s (setting "
        "DOCKYARD_BUILD_TIMEOUT_SECONDS)")
    killed = DeployFailed("build failed: The command '/bin/sh -c make' returned a non-zero "
                          "code: 137")
    assert str(limit_failure(settings, killed)) == (
        "build failed: The command '/bin/sh -c make' returned a non-zero code: 137: killed for "
        "using more than the build's memory limit of 256 MB (setting DOCKYARD_BUILD_MEMORY_MB)")
    other = DeployFailed("build failed: The command '/bin/sh -c make' returned a non-zero "
                         "code: 2")
    assert limit_failure(settings, other) is other
