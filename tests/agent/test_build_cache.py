"""The agent's build-cache prune on a real Docker (the legacy builder's cache is its
intermediate images): a dangling image past the age bound goes, the dependency layer a
recent build left stays, and a code-only rebuild still takes it from the cache."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import CachePruneRequest, ImageRef
from dockyard.agent.settings import AgentSettings
from tests.agent.conftest import SECRET

pytestmark = pytest.mark.slow
THREE_YEARS = 3 * 365 * 24 * 3600


@pytest.fixture
def docker_api(docker_host: str) -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=docker_host)
    yield api
    api.close()


@pytest.fixture
async def agent(tmp_path: Path, docker_host: str) -> AsyncIterator[NodeAgentClient]:
    settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=docker_host)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    transport = httpx.ASGITransport(app=create_app(settings))
    async with NodeAgentClient("http://agent.test", SECRET, transport=transport) as client:
        yield client


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def old_dangling_image(api: docker.APIClient) -> str:
    """An untagged image made in 2020 (a `docker save` archive with no tag, loaded)."""
    layer = _tar({"old": uuid.uuid4().hex.encode()})
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [
            "sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": None,
                            "Layers": ["layer.tar"]}]).encode()
    api.load_image(_tar({"layer.tar": layer, "config.json": config,
                         "manifest.json": manifest}))
    return image_id


def build(api: docker.APIClient, base: ImageRef, deps: str, code: str) -> list[str]:
    """The build's output lines; the app code's step fails unless `code` is 'ok'."""
    dockerfile = (f"FROM {base.reference}\nCOPY deps.txt /deps.txt\n"
                  "RUN cat /deps.txt > /installed\nCOPY app.txt /app.txt\n"
                  "RUN grep -qx ok /app.txt\n")
    context = _tar({"Dockerfile": dockerfile.encode(), "deps.txt": deps.encode(),
                    "app.txt": code.encode()})
    lines = []
    for chunk in api.build(fileobj=io.BytesIO(context), custom_context=True, rm=True,
                           forcerm=True, decode=True):
        lines.append(chunk.get("stream", "") + chunk.get("error", ""))
    return lines


def exists(api: docker.APIClient, image: str) -> bool:
    try:
        api.inspect_image(image)
    except docker.errors.NotFound:
        return False
    return True


async def test_old_dangling_images_go_and_the_dependency_layer_stays(
        agent: NodeAgentClient, docker_api: docker.APIClient, python_image: ImageRef) -> None:
    old = old_dangling_image(docker_api)
    deps = f"dependencies {uuid.uuid4().hex}"
    failed = build(docker_api, python_image, deps, "broken")
    assert "non-zero code" in "".join(failed), "".join(failed)
    assert exists(docker_api, old)

    result = await agent.prune_cache(CachePruneRequest(max_age_seconds=THREE_YEARS,
                                                       keep_bytes=0))

    assert not exists(docker_api, old)
    assert result.images_removed >= 1
    rebuilt = "".join(build(docker_api, python_image, deps, "ok"))
    install_step, code_steps = rebuilt.split("RUN cat /deps.txt", 1)[1].split("Step", 1)
    assert "Using cache" in install_step
    assert "Using cache" not in code_steps
    assert "Successfully built" in code_steps
