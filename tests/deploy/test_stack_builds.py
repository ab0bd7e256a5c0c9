"""Apps written the way their communities write them, built on the real Docker Engine with no
container registry (the offline bases) and this machine's package indexes and CA: each answers
HTTP, a code change reuses the dependency layer, and no package config stays in the image."""

from __future__ import annotations

import functools
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from dockyard.agent import buildconfig, commands
from dockyard.agent.buildconfig import BuildOptions
from dockyard.agent.models import ImageRef
from dockyard.agent.runtime import DockerRuntime
from dockyard.deploy.build import OOM_EXIT
from dockyard.deploy.dockerfile import detect_stack, offline_recipe, render_dockerfile
from dockyard.deploy.sources import GENERATED_DOCKERFILE, build_context
from dockyard.providers import images
from tests.deploy.test_dockerfile import free_port
from tests.live import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
POETRY_APP = Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "poetry-flask"
PNPM_APP = POETRY_APP.parent / "express-pnpm"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client() -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url="unix:///var/run/docker.sock", timeout=900)
    try:
        api.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker is not running ({exc}); start dockerd")
    yield api
    api.close()


@functools.cache
def offline_base(recipe: str) -> str:
    """Imported once per run: each import is a new image, which no cached layer builds on."""
    tarball = images.bootstrap_tarball(images.RECIPES[recipe], images.ImageSettings())
    return images.import_tarball(DockerRuntime("unix:///var/run/docker.sock"),
                                 tarball).reference


def build(client: docker.APIClient, app: Path, work: Path, tag: str) -> list[str]:
    """Build `app` as the agent does (generated Dockerfile + this machine's package config);
    the build output, which fails the test if the build failed."""
    stack = detect_stack(app)
    context = work / "context.tar"
    text = render_dockerfile(stack, offline_base(offline_recipe(stack)), 8000)
    name = build_context(app, context, text)
    assert name == GENERATED_DOCKERFILE == buildconfig.GENERATED_DOCKERFILE
    with context.open("r+b") as fileobj:
        buildconfig.add_to_context(fileobj, buildconfig.machine_config())
        lines = list(client.build(fileobj=fileobj, custom_context=True, tag=tag,
                                  dockerfile=name, rm=True, forcerm=True, decode=True))
    output = [str(line.get("stream") or line.get("error") or "") for line in lines]
    assert not [line for line in lines if "error" in line], "".join(output)
    return output


def serve(client: docker.APIClient, tag: str) -> tuple[str, int]:
    port = free_port()
    container = client.create_container(
        tag, environment={"GREETING": "hi"}, ports=[8000],
        host_config=client.create_host_config(port_bindings={8000: ("127.0.0.1", port)}))
    client.start(container)
    return container["Id"], port


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def config_files(client: docker.APIClient, image: str) -> set[str]:
    """Package config, CA copies and the build directory, wherever they are in the image."""
    container = client.create_container(image, user="0", command=[
        "sh", "-c", "find / -xdev \\( -name pip.conf -o -name npmrc -o -name .npmrc "
        "-o -name ca.crt -o -name .dockyard-build \\) -print"])
    try:
        client.start(container)
        client.wait(container, timeout=60)
        out: bytes = client.logs(container)
    finally:
        client.remove_container(container, force=True)
    return set(out.decode().split())


def nothing_left_of_the_build_config(client: docker.APIClient, tag: str, base: str) -> None:
    """The image holds no config file its base did not (Debian's npm ships its own npmrc),
    and no variable pointing at one."""
    assert config_files(client, tag) == config_files(client, base)
    env = " ".join(client.inspect_image(tag)["Config"]["Env"])  # type: ignore[no-untyped-call]
    assert "PIP_CONFIG_FILE" not in env
    assert "NPM_CONFIG_USERCONFIG" not in env


@pytest.fixture
def tagged(client: docker.APIClient) -> Iterator[list[str]]:
    tags: list[str] = []
    yield tags
    present = {tag for image in client.images() for tag in image.get("RepoTags") or []}
    for tag in set(tags) & present:
        client.remove_image(tag, force=True)


@pytest.mark.parametrize("app", [EXAMPLES / "flask-gunicorn", EXAMPLES / "fastapi-pyproject",
                                 EXAMPLES / "express", POETRY_APP, PNPM_APP],
                         ids=lambda app: app.name)
def test_the_example_builds_offline_and_answers(client: docker.APIClient, tmp_path: Path,
                                                tagged: list[str], app: Path) -> None:
    example = app.name
    tag = f"dockyard-test/{example}:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    build(client, app, tmp_path, tag)
    container, port = serve(client, tag)
    try:
        wait_until(lambda: answers(port), f"{example} answers /healthz", timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["greeting"] == "hi"
    finally:
        client.remove_container(container, force=True)
    nothing_left_of_the_build_config(
        client, tag, offline_base(offline_recipe(detect_stack(app))))


def test_an_express_app_locked_by_yarn(client: docker.APIClient, tmp_path: Path,
                                       tagged: list[str]) -> None:
    """The lock is made here by Yarn 1 (it names the registry's host, so it is not stored)."""
    app = tmp_path / "express-yarn"
    shutil.copytree(EXAMPLES / "express", app, ignore=shutil.ignore_patterns("package-lock.json"))
    subprocess.run(["npx", "--yes", "yarn@1.22.22", "install", "--ignore-scripts", "--silent"],
                   cwd=app, check=True, timeout=300)
    shutil.rmtree(app / "node_modules")
    assert detect_stack(app).install == "yarn"
    tag = f"dockyard-test/yarn:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    output = "".join(build(client, app, tmp_path, tag))
    assert "yarn@1.22.22 install --frozen-lockfile" in output
    container, port = serve(client, tag)
    try:
        wait_until(lambda: answers(port), "the Yarn-built app answers /healthz", timeout=60)
    finally:
        client.remove_container(container, force=True)


def test_a_code_change_reuses_the_dependency_layer(client: docker.APIClient, tmp_path: Path,
                                                   tagged: list[str]) -> None:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "flask-gunicorn", app)
    tag = f"dockyard-test/warm:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    build(client, app, tmp_path, tag)
    (app / "app.py").write_text((app / "app.py").read_text().replace("Hello", "Hi"))
    output = build(client, app, tmp_path, tag)
    steps = "".join(output).split("Step ")
    install = next(step for step in steps if "pip install -r" in step)
    assert "Using cache" in install
    assert "Using cache" not in next(step for step in steps if "COPY . /app" in step)


def build_with(client: docker.APIClient, app: Path, work: Path, tag: str, dockerfile: str,
               options: BuildOptions) -> list[dict[str, Any]]:
    """Build as the agent does (commands.build_image) with build arguments and limits."""
    name = build_context(app, work / "context.tar", None, dockerfile)
    with (work / "context.tar").open("rb") as fileobj:
        call = commands.build_image(fileobj, ImageRef(repository=tag.split(":")[0],
                                                      tag=tag.split(":")[1]), name, options)
        return list(getattr(client, call.method)(**call.kwargs))


def test_a_monorepo_root_a_named_dockerfile_and_build_args(
        client: docker.APIClient, tmp_path: Path, tagged: list[str]) -> None:
    base = offline_base("base")
    app = tmp_path / "repo" / "services" / "web"
    (app / "docker").mkdir(parents=True)
    (app / "docker" / "web.Dockerfile").write_text(
        f"FROM {base}\nARG GREETING\nRUN test \"$GREETING\" = 'hello there' && "
        "echo \"$GREETING\" > /greeting\n")
    tag = f"dockyard-test/args:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    lines = build_with(client, app, tmp_path, tag, "docker/web.Dockerfile",
                       BuildOptions(("GREETING=hello there",), memory_mb=256, cpus=1))
    assert not [line for line in lines if "error" in line], lines
    container = client.create_container(tag, command=["cat", "/greeting"])
    try:
        client.start(container)
        client.wait(container, timeout=60)
        assert client.logs(container) == b"hello there\n"
    finally:
        client.remove_container(container, force=True)


def test_a_build_over_its_memory_limit_is_killed(client: docker.APIClient, tmp_path: Path,
                                                 tagged: list[str]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(
        f"FROM {offline_base('base')}\n"
        "RUN python3 -c \"import time; b = bytearray(512 * 1024 * 1024); time.sleep(1)\"\n")
    tag = f"dockyard-test/oom:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    lines = build_with(client, app, tmp_path, tag, "Dockerfile", BuildOptions(memory_mb=64))
    errors = [str(line["error"]) for line in lines if "error" in line]
    assert errors
    assert OOM_EXIT in errors[0]
