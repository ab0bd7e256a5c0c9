"""Apps written the way their communities write them, built on the real Docker Engine with no
container registry (the offline bases) and this machine's package indexes and CA: each answers
HTTP, a code change reuses the dependency layer, and no package config stays in the image.
Each offline base is imported, and each example app built, once per module."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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

DOCKER = "unix:///var/run/docker.sock"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FLASK_APP = EXAMPLES / "flask-gunicorn"
POETRY_APP = Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "poetry-flask"
PNPM_APP = POETRY_APP.parent / "express-pnpm"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client() -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=DOCKER, timeout=900)
    try:
        api.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker is not running ({exc}); start dockerd")
    yield api
    api.close()


def import_offline_base(recipe: str) -> str:
    """The recipe's tarball (debootstrapped unless cached), imported: a new image, which no
    cached layer builds on."""
    tarball = images.bootstrap_tarball(images.RECIPES[recipe], images.ImageSettings())
    runtime = DockerRuntime(DOCKER)
    try:
        return images.import_tarball(runtime, tarball).reference
    finally:
        runtime.close()


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


class OfflineBases:
    """The offline bases, each imported once per module, when first needed."""

    def __init__(self, client: docker.APIClient) -> None:
        self.client = client
        self._imported: dict[str, str] = {}
        self._own_config: dict[str, set[str]] = {}

    def reference(self, recipe: str) -> str:
        if recipe not in self._imported:
            self._imported[recipe] = import_offline_base(recipe)
        return self._imported[recipe]

    def config_files(self, recipe: str) -> set[str]:
        """The config files the base itself holds (Debian's npm ships its own npmrc)."""
        if recipe not in self._own_config:
            self._own_config[recipe] = config_files(self.client, self.reference(recipe))
        return self._own_config[recipe]


@pytest.fixture(scope="module")
def bases(client: docker.APIClient) -> OfflineBases:
    return OfflineBases(client)


def build(client: docker.APIClient, bases: OfflineBases, app: Path, work: Path, tag: str
          ) -> list[str]:
    """Build `app` as the agent does (generated Dockerfile + this machine's package config);
    the build output, which fails the test if the build failed."""
    stack = detect_stack(app)
    context = work / "context.tar"
    text = render_dockerfile(stack, bases.reference(offline_recipe(stack)), 8000)
    name = build_context(app, context, text)
    assert name == GENERATED_DOCKERFILE == buildconfig.GENERATED_DOCKERFILE
    with context.open("r+b") as fileobj:
        buildconfig.add_to_context(fileobj, buildconfig.machine_config())
        lines = list(client.build(fileobj=fileobj, custom_context=True, tag=tag,
                                  dockerfile=name, rm=True, forcerm=True, decode=True))
    output = [str(line.get("stream") or line.get("error") or "") for line in lines]
    assert not [line for line in lines if "error" in line], "".join(output)
    return output


def remove_images(client: docker.APIClient, tags: Iterable[str]) -> None:
    present = {tag for image in client.images() for tag in image.get("RepoTags") or []}
    for tag in set(tags) & present:
        client.remove_image(tag, force=True)


@dataclass
class AppImages:
    """Each app built once per module, for the tests that start from the same build."""

    client: docker.APIClient
    bases: OfflineBases
    work: Path
    tags: dict[Path, str] = field(default_factory=dict)

    def tag(self, app: Path) -> str:
        if app not in self.tags:
            tag = f"dockyard-test/{app.name}:{uuid.uuid4().hex[:8]}"
            (self.work / app.name).mkdir(exist_ok=True)
            build(self.client, self.bases, app, self.work / app.name, tag)
            self.tags[app] = tag
        return self.tags[app]


@pytest.fixture(scope="module")
def app_images(client: docker.APIClient, bases: OfflineBases,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppImages]:
    made = AppImages(client, bases, tmp_path_factory.mktemp("app-images"))
    yield made
    remove_images(client, made.tags.values())


@pytest.fixture
def tagged(client: docker.APIClient) -> Iterator[list[str]]:
    tags: list[str] = []
    yield tags
    remove_images(client, tags)


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


def nothing_left_of_the_build_config(client: docker.APIClient, tag: str, base_files: set[str]
                                     ) -> None:
    """The image holds no config file its base did not, and no variable pointing at one."""
    assert config_files(client, tag) == base_files
    env = " ".join(client.inspect_image(tag)["Config"]["Env"])  # type: ignore[no-untyped-call]
    assert "PIP_CONFIG_FILE" not in env
    assert "NPM_CONFIG_USERCONFIG" not in env


@pytest.mark.parametrize("app", [FLASK_APP, EXAMPLES / "fastapi-pyproject", POETRY_APP,
                                 EXAMPLES / "express", PNPM_APP],
                         ids=lambda app: app.name)
def test_the_example_builds_offline_and_answers(
        client: docker.APIClient, bases: OfflineBases, app_images: AppImages, app: Path) -> None:
    tag = app_images.tag(app)
    container, port = serve(client, tag)
    try:
        wait_until(lambda: answers(port), f"{app.name} answers /healthz", timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["greeting"] == "hi"
    finally:
        client.remove_container(container, force=True)
    base_files = bases.config_files(offline_recipe(detect_stack(app)))
    nothing_left_of_the_build_config(client, tag, base_files)


def test_an_express_app_locked_by_yarn(client: docker.APIClient, bases: OfflineBases,
                                       tmp_path: Path, tagged: list[str]) -> None:
    """The lock is made here by Yarn 1 (it names the registry's host, so it is not stored)."""
    app = tmp_path / "express-yarn"
    shutil.copytree(EXAMPLES / "express", app, ignore=shutil.ignore_patterns("package-lock.json"))
    subprocess.run(["npx", "--yes", "yarn@1.22.22", "install", "--ignore-scripts", "--silent"],
                   cwd=app, check=True, timeout=300)
    shutil.rmtree(app / "node_modules")
    assert detect_stack(app).install == "yarn"
    tag = f"dockyard-test/yarn:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    output = "".join(build(client, bases, app, tmp_path, tag))
    assert "yarn@1.22.22 install --frozen-lockfile" in output
    container, port = serve(client, tag)
    try:
        wait_until(lambda: answers(port), "the Yarn-built app answers /healthz", timeout=60)
    finally:
        client.remove_container(container, force=True)


def test_a_code_change_reuses_the_dependency_layer(
        client: docker.APIClient, bases: OfflineBases, app_images: AppImages, tmp_path: Path,
        tagged: list[str]) -> None:
    """The first build is the example's (its test serves that same image)."""
    app_images.tag(FLASK_APP)
    changed = tmp_path / "app"
    shutil.copytree(FLASK_APP, changed)
    (changed / "app.py").write_text((changed / "app.py").read_text().replace("Hello", "Hi"))
    tag = f"dockyard-test/warm:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    steps = "".join(build(client, bases, changed, tmp_path, tag)).split("Step ")
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
        client: docker.APIClient, bases: OfflineBases, tmp_path: Path,
        tagged: list[str]) -> None:
    app = tmp_path / "repo" / "services" / "web"
    (app / "docker").mkdir(parents=True)
    (app / "docker" / "web.Dockerfile").write_text(
        f"FROM {bases.reference('python')}\nARG GREETING\nRUN test \"$GREETING\" = "
        "'hello there' && echo \"$GREETING\" > /greeting\n")
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


def test_a_build_over_its_memory_limit_is_killed(
        client: docker.APIClient, bases: OfflineBases, tmp_path: Path,
        tagged: list[str]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(
        f"FROM {bases.reference('python')}\n"
        "RUN python3 -c \"import time; b = bytearray(512 * 1024 * 1024); time.sleep(1)\"\n")
    tag = f"dockyard-test/oom:{uuid.uuid4().hex[:8]}"
    tagged.append(tag)
    lines = build_with(client, app, tmp_path, tag, "Dockerfile", BuildOptions(memory_mb=64))
    errors = [str(line["error"]) for line in lines if "error" in line]
    assert errors
    assert OOM_EXIT in errors[0]
