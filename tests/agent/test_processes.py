"""`ps` and one-off runs on a real Docker: the agent app over ASGI, the machine's dockerd."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import ContainerSpec, ImageRef, OneOffRun, ProcessState, RestartPolicy
from dockyard.agent.processes import LastExit, last_exit, with_heartbeats
from dockyard.agent.settings import AgentSettings
from tests.agent.conftest import SECRET, signed_headers
from tests.live import serving

pytestmark = pytest.mark.slow
SERVICE = "ps-test"


@pytest.fixture
def docker_api(docker_host: str) -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=docker_host)
    yield api
    for found in api.containers(all=True, filters={"label": f"dockyard.service={SERVICE}"}):
        api.remove_container(found["Id"], force=True)
    api.close()


@pytest.fixture
def agent_app(tmp_path: Path, docker_host: str, docker_api: docker.APIClient
              ) -> httpx.ASGITransport:
    settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=docker_host)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    return httpx.ASGITransport(app=create_app(settings))


@pytest.fixture
async def agent(agent_app: httpx.ASGITransport) -> AsyncIterator[NodeAgentClient]:
    async with NodeAgentClient("http://agent.test", SECRET, transport=agent_app) as client:
        yield client


def containers_of(api: docker.APIClient) -> list[str]:
    found = api.containers(all=True, filters={"label": f"dockyard.service={SERVICE}"})
    return [c["Names"][0].lstrip("/") for c in found]


def python(code: str) -> list[str]:
    return ["python3", "-c", code]


async def run_lines(agent: NodeAgentClient, request: OneOffRun) -> list[dict[str, object]]:
    return [line async for line in agent.run_one_off(request)]


async def test_the_same_container_asked_for_twice_at_once_is_made_once_and_both_answer(
        agent: NodeAgentClient, python_image: ImageRef, docker_api: docker.APIClient) -> None:
    """The reconciler and a request may ask for one container at the same moment: the second
    waits for the first and finds it made (it used to fail with Docker's name conflict)."""
    spec = ContainerSpec(name=f"{SERVICE}-twice", service=SERVICE, image=python_image,
                         command=["sleep", "600"])
    first, second = await asyncio.gather(*(agent.run_container(spec) for _ in range(2)))
    assert first.id == second.id
    assert second.state == "running"
    assert containers_of(docker_api) == [spec.name]


async def test_a_run_streams_output_with_its_env_returns_the_exit_code_and_is_removed(
        agent: NodeAgentClient, python_image: ImageRef, docker_api: docker.APIClient) -> None:
    code = "import os, sys; print(os.environ['X']); print('oops', file=sys.stderr); exit(3)"
    request = OneOffRun(service=SERVICE, image=python_image, command=python(code),
                        env={"X": "from-env"})
    lines = await run_lines(agent, request)
    output = "".join(str(line.get("output", "")) for line in lines)
    assert "from-env\n" in output
    assert "oops\n" in output
    assert lines[-1] == {"exit_code": 3, "timed_out": False}
    assert containers_of(docker_api) == []


async def test_a_run_past_its_time_limit_is_killed_and_removed(
        agent: NodeAgentClient, python_image: ImageRef, docker_api: docker.APIClient) -> None:
    request = OneOffRun(service=SERVICE, image=python_image, timeout_seconds=1,
                        command=python("import time; time.sleep(60)"))
    lines = await run_lines(agent, request)
    assert lines[-1] == {"exit_code": 137, "timed_out": True}
    assert containers_of(docker_api) == []


async def test_a_run_whose_caller_leaves_is_removed(
        agent_app: httpx.ASGITransport, python_image: ImageRef, docker_api: docker.APIClient
        ) -> None:
    """Over a real HTTP server: the ASGI transport buffers the whole response, so the caller
    could not leave before the command ended (the test waited out its 120 s)."""
    request = OneOffRun(service=SERVICE, image=python_image, command=python(
        "import time; print('started', flush=True); time.sleep(120)"))
    with serving(agent_app.app) as url:
        async with NodeAgentClient(url, SECRET) as agent:
            async for line in agent.run_one_off(request):
                if "output" in line:
                    break  # the client closes the stream here
            await until_removed(docker_api, within=30)  # the next heartbeat (5 s) notices


async def until_removed(api: docker.APIClient, within: float) -> None:
    deadline = time.monotonic() + within
    while found := containers_of(api):
        assert time.monotonic() < deadline, f"{found} still there after {within:.0f} s"
        await asyncio.sleep(0.2)  # polling Docker: no event to await


async def test_a_run_of_a_missing_image_is_a_clear_error(agent: NodeAgentClient) -> None:
    request = OneOffRun(service=SERVICE, image=ImageRef(repository="no/such-image"),
                        command=["true"])
    with pytest.raises(AgentError) as caught:
        await run_lines(agent, request)
    assert caught.value.status_code == 404
    assert "no/such-image" in caught.value.detail


async def test_a_run_takes_argv_only(agent_app: httpx.ASGITransport) -> None:
    body = json.dumps({"service": SERVICE, "image": {"repository": "x"}, "command": "ls"}).encode()
    async with httpx.AsyncClient(transport=agent_app, base_url="http://agent.test") as http:
        answer = await http.post("/runs", content=body, headers={
            **signed_headers(SECRET, "POST", "/runs", body), "content-type": "application/json"})
    assert answer.status_code == 422


def spec(name: str, image: ImageRef, code: str, **options: object) -> ContainerSpec:
    return ContainerSpec.model_validate({
        "name": name, "service": SERVICE, "image": image.model_dump(), "command": python(code),
        "labels": {"dockyard.deployment": "d" * 32}, **options})


async def processes(agent: NodeAgentClient) -> dict[str, ProcessState]:
    return {p.name: p for p in await agent.processes(SERVICE)}


async def test_ps_shows_running_crashing_and_oom_killed_containers(
        agent: NodeAgentClient, python_image: ImageRef) -> None:
    await agent.run_container(spec("ps-test-web", python_image, "import time; time.sleep(300)"))
    await agent.run_container(spec("ps-test-crash", python_image, "raise SystemExit(4)"))
    await agent.run_container(spec("ps-test-oom", python_image, "x = bytearray(200 << 20)",
                                   memory_bytes=16 << 20, restart=RestartPolicy.NO))
    await wait_for(agent, lambda found: found["ps-test-crash"].restart_count >= 2
                   and found["ps-test-oom"].oom_killed, "a crash loop and an OOM kill")
    found = await processes(agent)
    web = found["ps-test-web"]
    assert (web.state, web.restart_count, web.exit_code) == ("running", 0, None)
    assert web.memory_bytes
    assert web.started_at
    assert web.labels["dockyard.deployment"] == "d" * 32
    assert (found["ps-test-oom"].state, found["ps-test-oom"].exit_code) == ("exited", 137)
    crash = found["ps-test-crash"]
    assert crash.exit_code == 4  # also while Docker has it running again


async def wait_for(agent: NodeAgentClient, condition: Callable[[dict[str, ProcessState]], bool],
                   what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition(await processes(agent)):
        assert time.monotonic() < deadline, f"{what} did not happen within 60 s"
        await asyncio.sleep(0.2)  # Docker's restart backoff: nothing to await but time


def die(code: str, at: int = 0) -> dict[str, object]:
    return {"Action": "die", "timeNano": at, "Actor": {"Attributes": {"exitCode": code}}}


def oom(at: int = 0) -> dict[str, object]:
    return {"Action": "oom", "timeNano": at}


SECOND = 1_000_000_000


@pytest.mark.parametrize(("events", "expected"), [
    ([], LastExit()),
    ([die("4"), die("1")], LastExit(1)),
    ([oom(), die("137"), die("0")], LastExit(0)),
    ([die("0"), oom(), die("137")], LastExit(137, oom_killed=True)),
    ([die("0", 0), die("137", 9 * SECOND), oom(9 * SECOND + 1000)],
     LastExit(137, oom_killed=True)),  # Docker reported the kill after the exit
    ([oom(0), die("137", 5 * SECOND)], LastExit(137)),  # too far apart to be its cause
    ([die("")], LastExit()),
])
def test_the_last_exit_is_the_last_die_event_and_an_oom_next_to_it(
        events: list[dict[str, object]], expected: LastExit) -> None:
    assert last_exit(events) == expected


async def test_a_silent_stream_gets_heartbeats_and_is_cleaned_up_when_its_caller_leaves(
        ) -> None:
    cleaned = asyncio.Event()

    async def silent() -> AsyncGenerator[int, None]:
        try:
            yield 1
            await asyncio.sleep(60)
            yield 2
        finally:
            cleaned.set()

    stream = with_heartbeats(silent(), 0.05, 0)
    assert [await anext(stream) for _ in range(3)] == [1, 0, 0]
    await stream.aclose()  # type: ignore[attr-defined]
    assert cleaned.is_set()
