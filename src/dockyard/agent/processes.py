"""What runs for a service on this node (`ps`), and one-off commands in new containers (`run`)."""

from __future__ import annotations

import asyncio
import codecs
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio

from dockyard.agent import commands as cmd
from dockyard.agent.models import ContainerSpec, OneOffRun, ProcessState, RestartPolicy
from dockyard.agent.runtime import DockerRuntime, EngineError

ONE_OFF_LABEL = "dockyard.one-off"
HEARTBEAT_SECONDS = 5.0
OOM_GAP_NANOS = 2_000_000_000  # an `oom` event this close to a `die` is its cause
Item = TypeVar("Item")


@dataclass(frozen=True)
class LastExit:
    code: int | None = None
    oom_killed: bool = False


def last_exit(events: list[dict[str, Any]]) -> LastExit:
    """How the container last ended, from its `die` events (Docker forgets that in inspect
    once it restarts the container)."""
    dies = [i for i, event in enumerate(events) if event.get("Action") == "die"]
    if not dies:
        return LastExit()
    code = _attributes(events[dies[-1]]).get("exitCode", "")
    return LastExit(int(code) if code.lstrip("-").isdigit() else None,
                    dies[-1] in memory_kills(events))


def memory_kills(events: list[dict[str, Any]]) -> set[int]:
    """The indexes of the `die` events the kernel caused by killing for memory: each `oom`
    event pairs with the nearest `die` of its container, the following one on a tie
    (Docker may report the `oom` just before or just after the exit)."""
    killed: set[int] = set()
    for at, oom in enumerate(events):
        if oom.get("Action") != "oom":
            continue
        near = [(abs(_nanos(event) - _nanos(oom)), index < at, abs(index - at), index)
                for index, event in enumerate(events) if event.get("Action") == "die"
                and index not in killed and _name(event) == _name(oom)]
        if near and min(near)[0] <= OOM_GAP_NANOS:
            killed.add(min(near)[3])
    return killed


def _attributes(event: dict[str, Any]) -> dict[str, str]:
    return (event.get("Actor") or {}).get("Attributes") or {}


def _name(event: dict[str, Any]) -> str:
    return _attributes(event).get("name", "")


def _nanos(event: dict[str, Any]) -> int:
    return int(event.get("timeNano", 0))


def process_state(inspected: dict[str, Any], stats: dict[str, Any] | None, ended: LastExit
                  ) -> ProcessState:
    """A container from Docker's inspect, its stats while it runs, and how it last ended
    (Docker forgets that in inspect once it restarts the container; its events keep it)."""
    state = inspected.get("State") or {}
    running = state.get("Status") == "running"  # "restarting" also counts as Running
    memory = (stats or {}).get("memory_stats", {}).get("usage")
    return ProcessState(
        name=inspected["Name"].lstrip("/"),
        labels=(inspected.get("Config") or {}).get("Labels") or {},
        state=state.get("Status", ""),
        started_at=_moment(state.get("StartedAt")), finished_at=_moment(state.get("FinishedAt")),
        restart_count=inspected.get("RestartCount", 0), exit_code=ended.code,
        oom_killed=ended.oom_killed or bool(state.get("OOMKilled")),
        memory_bytes=memory if running else None,
    )


def _moment(value: str | None) -> str | None:
    """Docker's zero time ("0001-01-01T00:00:00Z") means never."""
    return None if not value or value.startswith("0001") else value


async def service_processes(runtime: DockerRuntime, service: str) -> list[ProcessState]:
    """Every container of `service` on this node but one-off runs, by name."""
    found = await runtime.run(cmd.list_containers({cmd.MANAGED_LABEL: "true",
                                                    cmd.SERVICE_LABEL: service}))
    names = sorted(raw["Names"][0].lstrip("/") for raw in found
                   if ONE_OFF_LABEL not in (raw.get("Labels") or {}))
    return [await _process(runtime, name) for name in names]


async def _process(runtime: DockerRuntime, name: str) -> ProcessState:
    inspected = await runtime.run(cmd.inspect_container(name))
    running = (inspected.get("State") or {}).get("Status") == "running"
    stats = await runtime.run(cmd.container_stats(name)) if running else None
    created = int(datetime.fromisoformat(inspected["Created"]).timestamp())
    call = cmd.container_exits(inspected["Id"], created, time.time())
    events = [event async for event in runtime.stream(call)]
    return process_state(inspected, stats, last_exit(events))


def one_off_spec(request: OneOffRun) -> ContainerSpec:
    name = f"{request.service}-run-{secrets.token_hex(4)}"
    return ContainerSpec(name=name, service=request.service, image=request.image,
                         command=request.command, env=request.env,
                         labels={**request.labels, ONE_OFF_LABEL: "true"},
                         restart=RestartPolicy.NO, extra_hosts=request.extra_hosts)


def run_one_off(runtime: DockerRuntime, request: OneOffRun) -> AsyncIterator[dict[str, Any]]:
    """The run's lines, with a `{"heartbeat": true}` line after each silent HEARTBEAT_SECONDS:
    a server only learns that its caller left when it writes, so a silent command would
    otherwise keep its container until it ends."""
    return with_heartbeats(_run_one_off(runtime, request), HEARTBEAT_SECONDS,
                           {"heartbeat": True})


async def with_heartbeats(items: AsyncGenerator[Item, None], seconds: float, beat: Item
                          ) -> AsyncIterator[Item]:
    """`items`, with `beat` whenever none came for `seconds`."""
    pending: asyncio.Future[Item] | None = None
    try:
        while True:
            step = pending = pending or asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({step}, timeout=seconds)
            if not done:
                yield beat
                continue
            pending = None
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(pending, items)


async def _stop(pending: asyncio.Future[Item] | None, items: AsyncGenerator[Item, None]
                ) -> None:
    """Cancel the step under way and let `items` run its own clean-up."""
    if pending is not None:
        pending.cancel()
        await asyncio.wait({pending})
    await items.aclose()


async def _run_one_off(runtime: DockerRuntime, request: OneOffRun
                       ) -> AsyncGenerator[dict[str, Any], None]:
    """`{"container"}` once started, `{"output"}` chunks, then `{"exit_code", "timed_out"}`.
    The container is removed at the end, also when the caller goes away mid-stream."""
    spec = one_off_spec(request)
    loop = asyncio.get_running_loop()
    started = loop.time()
    timer = loop.call_later(request.timeout_seconds, _kill, runtime, spec.name)
    try:
        await runtime.run_all(cmd.run_container(spec, runtime.container_logs))
        yield {"container": spec.name}
        async for text in _output(runtime, spec.name):
            yield {"output": text}
        result = await runtime.run(cmd.wait_container(spec.name))
        timed_out = loop.time() - started >= request.timeout_seconds
        await _remove(runtime, spec.name)  # gone before the caller hears the exit code
        yield {"exit_code": result.get("StatusCode", -1), "timed_out": timed_out}
    finally:
        timer.cancel()
        with anyio.CancelScope(shield=True):
            await _remove(runtime, spec.name)


_KILLS: set[asyncio.Task[None]] = set()


def _kill(runtime: DockerRuntime, name: str) -> None:
    """Kill a one-off run that outlived its time limit; its output stream then ends."""
    async def kill() -> None:
        try:
            await runtime.run(cmd.kill_container(name))
        except EngineError:  # it ended meanwhile
            return

    task = asyncio.get_running_loop().create_task(kill())
    _KILLS.add(task)
    task.add_done_callback(_KILLS.discard)


async def _output(runtime: DockerRuntime, name: str) -> AsyncIterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in runtime.stream(cmd.follow_logs(name)):
        if text := decoder.decode(chunk):
            yield text
    if rest := decoder.decode(b"", final=True):
        yield rest


async def _remove(runtime: DockerRuntime, name: str) -> None:
    try:
        await runtime.run(cmd.remove_container(name))
    except EngineError as exc:
        if exc.status_code != 404:
            raise
