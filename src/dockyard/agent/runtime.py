"""The one place that executes `EngineCall`s against the Docker Engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from starlette.concurrency import iterate_in_threadpool

from dockyard.agent.commands import ContainerLogs, EngineCall
from dockyard.kernel.errors import DockyardError

if TYPE_CHECKING:  # the control plane imports this module, not always the Docker SDK
    import docker


class EngineError(DockyardError):
    """Docker refused or failed; carries Docker's status when it is a client error."""

    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


def _docker_error() -> type[Exception]:
    """Evaluated only when an `except` clause is matched, so after Docker was called."""
    import docker.errors

    return docker.errors.DockerException


def _translate(exc: Exception) -> EngineError:
    import docker.errors

    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 502
        explanation = exc.explanation or str(exc)
        return EngineError(str(explanation), status if status in (400, 404, 409) else 502)
    return EngineError(f"docker engine unreachable: {exc}", 503)


class DockerRuntime:
    """`container_logs` is the log limit of every container created through it."""

    def __init__(self, base_url: str, timeout: int = 600,
                 container_logs: ContainerLogs = ContainerLogs()) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.container_logs = container_logs
        self._api: docker.APIClient | None = None

    @property
    def api(self) -> docker.APIClient:
        if self._api is None:
            import docker

            self._api = docker.APIClient(base_url=self.base_url, version="auto",
                                         timeout=self.timeout)
        return self._api

    def execute(self, call: EngineCall) -> Any:
        try:
            return getattr(self.api, call.method)(**call.kwargs)
        except _docker_error() as exc:
            raise _translate(exc) from exc

    async def run(self, call: EngineCall) -> Any:
        return await to_thread.run_sync(self.execute, call)

    async def run_all(self, calls: Iterable[EngineCall]) -> list[Any]:
        return [await self.run(call) for call in calls]

    async def stream(self, call: EngineCall) -> AsyncIterator[Any]:
        """Items of a streaming call (build output, pull progress, log chunks) as they come."""
        items: Iterator[Any] = await self.run(call)
        async for item in iterate_in_threadpool(self._translated(items)):
            yield item

    def _translated(self, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        except _docker_error() as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
