"""The one place that executes `EngineCall`s against the Docker Engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from anyio import to_thread

from dockyard.agent.commands import ContainerLogs, EngineCall
from dockyard.agent.engine import EngineClient
from dockyard.agent.engine_http import BROKEN, EngineError, Streamed

__all__ = ["DockerRuntime", "EngineError"]
_END = object()


class DockerRuntime:
    """`container_logs` is the log limit of every container created through it."""

    def __init__(self, base_url: str, timeout: int = 600,
                 container_logs: ContainerLogs = ContainerLogs()) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.container_logs = container_logs
        self.api = EngineClient(base_url, timeout)

    def execute(self, call: EngineCall) -> Any:
        try:
            return getattr(self.api, call.method)(**call.kwargs)
        except BROKEN as exc:
            raise EngineError(f"docker engine connection broke off: {exc}", 503) from exc

    async def run(self, call: EngineCall) -> Any:
        return await to_thread.run_sync(self.execute, call)

    async def run_all(self, calls: Iterable[EngineCall]) -> list[Any]:
        return [await self.run(call) for call in calls]

    async def stream(self, call: EngineCall) -> AsyncIterator[Any]:
        """Items of a streaming call (build output, pull progress, log chunks) as they come."""
        items: Streamed[Any] = await self.run(call)
        ahead = self._unbroken(iter(items))
        try:
            while (item := await to_thread.run_sync(next, ahead, _END,
                                                    abandon_on_cancel=True)) is not _END:
                yield item
        finally:  # a caller that left: the thread still waiting for the next item returns
            items.abort()

    @staticmethod
    def _unbroken(items: Iterator[Any]) -> Iterator[Any]:
        """A connection that breaks off mid-stream is Docker's failure, said as one."""
        try:
            yield from items
        except BROKEN as exc:
            raise EngineError(f"docker engine connection broke off: {exc}", 503) from exc

    def close(self) -> None:
        self.api.close()
