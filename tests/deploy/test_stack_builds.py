"""Apps written the way their communities write them, built on the real Docker Engine with no
container registry (the offline bases) and this machine's package indexes and CA: each answers
HTTP, a code change reuses the dependency layer, and no package config stays in the image."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import buildconfig
from dockyard.agent.runtime import DockerRuntime
from dockyard.deploy.dockerfile import detect_stack, offline_recipe, render_dockerfile
from dockyard.deploy.sources import GENERATED_DOCKERFILE, build_context
from dockyard.providers import images
from tests.deploy.test_dockerfile import free_port
from tests.live import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
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


def offline_base(recipe: str) -> str:
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


def leftovers(client: docker.APIClient, tag: str) -> str:
    """Package config, CA copies and the build directory, wherever they are in the image."""
    container = client.create_container(tag, user="0", command=[
        "sh", "-c", "find / -xdev \\( -name pip.conf -o -name npmrc -o -name .npmrc "
        "-o -name ca.crt -o -name .dockyard-build \\) -print; env"])
    try:
        client.start(container)
        client.wait(container, timeout=60)
        out: bytes = client.logs(container)
    finally:
        client.remove_container(container, force=True)
    return out.decode()


@pytest.fixture
def tagged(client: docker.APIClient) -> Iterator[list[str]]:
    tags: list[str] = []
    yield tags
    for tag in tags:
        client.remove_image(tag, force=True)


@pytest.mark.parametrize("example", ["flask-gunicorn", "fastapi-pyproject", "express"])
def test_the_example_builds_offline_and_answers(client: docker.APIClient, tmp_path: Path,
                                                tagged: list[str], example: str) -> None:
    tag = f"dockyard-test/{example}:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    build(client, EXAMPLES / example, tmp_path, tag)
    container, port = serve(client, tag)
    try:
        wait_until(lambda: answers(port), f"{example} answers /healthz", timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["greeting"] == "hi"
    finally:
        client.remove_container(container, force=True)
    found = leftovers(client, tag)
    for name in ("pip.conf", "npmrc", "ca.crt", ".dockyard-build", "PIP_CONFIG_FILE",
                 "NPM_CONFIG_USERCONFIG"):
        assert name not in found, found


def test_a_code_change_reuses_the_dependency_layer(client: docker.APIClient, tmp_path: Path,
                                                   tagged: list[str]) -> None:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "flask-gunicorn", app)
    tag = f"dockyard-test/warm:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    build(client, app, tmp_path, tag)
    (app / "app.py").write_text((app / "app.py").read_text().replace("Hello", "Hi"))
    output = build(client, app, tmp_path, tag)
    install = next(i for i, line in enumerate(output) if "pip install -r" in line)
    assert "Using cache" in output[install + 1]
    assert not any("Using cache" in line for line in output[
        next(i for i, line in enumerate(output) if "COPY . /app" in line) + 1:][:1])
