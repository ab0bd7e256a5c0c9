"""One HTTP GET from the node, answered as a `ProbeResult`: it never raises for the network."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dockyard.agent.models import ProbeRequest, ProbeResult

if TYPE_CHECKING:
    import httpx


def probe_url(request: ProbeRequest) -> httpx.URL:
    import httpx  # here: an idle agent does not hold it

    return httpx.URL(scheme="http", host=request.host, port=request.port,
                     raw_path=request.path.encode("ascii"))


def _error_text(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def probe(request: ProbeRequest, transport: httpx.AsyncBaseTransport | None = None
                ) -> ProbeResult:
    """GET without following redirects or using proxies from the environment; the status
    is known once the head arrives, so the body is not read."""
    import httpx

    started = time.perf_counter()
    status, error = None, None
    try:
        async with (
            httpx.AsyncClient(timeout=request.timeout_seconds, follow_redirects=False,
                              trust_env=False, transport=transport) as http,
            http.stream("GET", probe_url(request)) as response,
        ):
            status = response.status_code
    except httpx.HTTPError as exc:
        error = _error_text(exc)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return ProbeResult(ok=status is not None and 200 <= status < 400, status=status,
                       error=error, elapsed_ms=round(elapsed_ms, 3))
