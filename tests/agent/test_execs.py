"""Commands in a managed container on a real Docker: stdout kept as a blob with its digest,
exit code and stderr tail; stdin fed from an uploaded blob; only managed containers."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.execs import BLOB_MAX_AGE_SECONDS, BlobStore, ExecRequest
from dockyard.agent.models import ContainerSpec, ImageRef
from dockyard.agent.settings import AgentSettings
from tests.agent.conftest import SECRET

pytestmark = pytest.mark.slow
SERVICE = "exec-test"
CONTAINER = "exec-test-box"


@pytest.fixture
def docker_api(docker_host: str) -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=docker_host)
    yield api
    for found in api.containers(all=True, filters={"label": f"dockyard.service={SERVICE}"}):
        api.remove_container(found["Id"], force=True)
    api.close()


@pytest.fixture
def settings(tmp_path: Path, docker_host: str) -> AgentSettings:
    settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=docker_host)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    return settings


@pytest.fixture
async def agent(settings: AgentSettings, docker_api: docker.APIClient
                ) -> AsyncIterator[NodeAgentClient]:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with NodeAgentClient("http://agent.test", SECRET, transport=transport) as client:
        yield client


@pytest.fixture
async def box(agent: NodeAgentClient, python_image: ImageRef) -> str:
    spec = ContainerSpec(name=CONTAINER, service=SERVICE, image=python_image,
                         command=["sleep", "600"])
    await agent.run_container(spec)
    return CONTAINER


async def read_all(agent: NodeAgentClient, blob_id: str) -> bytes:
    return b"".join([chunk async for chunk in agent.read_blob(blob_id)])


def python(code: str) -> list[str]:
    return ["python3", "-c", code]


async def test_stdout_is_kept_whole_with_its_digest_and_the_stderr_tail_and_exit_code(
        agent: NodeAgentClient, box: str) -> None:
    code = ("import os, sys; sys.stdout.buffer.write(os.environ['WORD'].encode() * 300000); "
            "sys.stderr.write('e' * 10000 + 'the end'); exit(3)")
    result = await agent.run_in_container(box, ExecRequest(argv=python(code),
                                                           env={"WORD": "data"}))
    expected = b"data" * 300000
    assert result.exit_code == 3
    assert (result.stdout.bytes, result.stdout.sha256) == (
        len(expected), hashlib.sha256(expected).hexdigest())
    assert result.stderr_tail.endswith("the end")
    assert len(result.stderr_tail) <= 4096
    assert await read_all(agent, result.stdout.id) == expected


async def test_stdin_is_fed_from_an_uploaded_blob_to_its_end(
        agent: NodeAgentClient, box: str, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 20000
    (tmp_path / "in").write_bytes(payload)
    uploaded = await agent.upload_blob(tmp_path / "in")
    assert uploaded.sha256 == hashlib.sha256(payload).hexdigest()
    code = "import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"
    result = await agent.run_in_container(box, ExecRequest(argv=python(code),
                                                           stdin=uploaded.id))
    assert result.exit_code == 0, result.stderr_tail
    assert (await read_all(agent, result.stdout.id)).decode().strip() == uploaded.sha256


async def test_a_deleted_blob_is_gone(agent: NodeAgentClient, box: str) -> None:
    result = await agent.run_in_container(box, ExecRequest(argv=["echo", "hi"]))
    await agent.delete_blob(result.stdout.id)
    with pytest.raises(AgentError) as refused:
        await read_all(agent, result.stdout.id)
    assert refused.value.status_code == 404


async def test_a_container_the_agent_does_not_manage_is_refused(
        agent: NodeAgentClient, docker_api: docker.APIClient, python_image: ImageRef) -> None:
    made = docker_api.create_container(python_image.reference, command=["sleep", "60"],
                                       labels={"dockyard.service": SERVICE},
                                       name="exec-test-foreign")
    docker_api.start(made)
    with pytest.raises(AgentError) as refused:
        await agent.run_in_container("exec-test-foreign", ExecRequest(argv=["true"]))
    assert refused.value.status_code == 404


async def test_a_blob_id_and_an_argv_are_validated(agent: NodeAgentClient, box: str) -> None:
    with pytest.raises(AgentError) as refused:
        await read_all(agent, "../agent.key")
    assert refused.value.status_code in (404, 422)
    with pytest.raises(AgentError) as empty:
        await agent.run_in_container(box, ExecRequest.model_construct(argv=[], env={}))
    assert empty.value.status_code == 422


def test_blobs_older_than_a_day_go_when_a_new_one_is_made(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    old, recent = blobs.path(blobs.new()), blobs.path(blobs.new())
    for path in (old, recent):
        path.write_bytes(b"left by a control plane that never came back")
    day_ago = time.time() - BLOB_MAX_AGE_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    blobs.new()
    assert (old.exists(), recent.exists()) == (False, True)


async def test_an_uploaded_blob_over_the_agents_upload_limit_is_refused(
        settings: AgentSettings, docker_api: docker.APIClient, tmp_path: Path) -> None:
    limited = settings.model_copy(update={"max_upload_bytes": 4096})
    transport = httpx.ASGITransport(app=create_app(limited))
    (tmp_path / "big").write_bytes(b"x" * 5000)
    async with NodeAgentClient("http://agent.test", SECRET, transport=transport) as client:
        with pytest.raises(AgentError) as refused:
            await client.upload_blob(tmp_path / "big")
        assert refused.value.status_code == 413
