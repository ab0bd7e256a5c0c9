"""Health from the data path: requests through the node's edge, as visitors make them.

The edge is asked for a name it does not serve (its catch-all answers 404); each live site
with its own name. A connection that fails, or a gateway error (502, 503, 504: nginx could
not reach what is behind it), is a problem, named so a person can act on it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dockyard.agent.models import NodeHealth, Site, SiteHealth, SupervisionEvent
from dockyard.agent.nginx import host_routes

UNKNOWN_NAME = "dockyard-health.invalid"
GATEWAY_ERRORS = frozenset({502, 503, 504})
TIMEOUT_SECONDS = 3.0

if TYPE_CHECKING:
    import httpx


def probe_name(site: Site, sites: list[Site]) -> str:
    """The first of the site's names that leads to it on the edge (a later site may have
    claimed one), else its first."""
    routes = host_routes(sites)
    ours = [name for name in site.server_names if routes.get(name) == site.service]
    return (ours or site.server_names)[0]


def _reason(exc: httpx.HTTPError) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {TIMEOUT_SECONDS:.0f} s"
    if _refused(exc):
        return "connection refused"
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        return "connection closed without an answer"
    return str(exc) or type(exc).__name__


def _refused(exc: BaseException | None) -> bool:
    """Whether a refused connection is behind `exc` (httpx words it its own way)."""
    while exc is not None:
        if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def get_through_edge(port: int, name: str) -> SiteHealth:
    """One GET to the edge's local listener with `name` as Host; never raises."""
    import httpx  # here: an idle agent does not hold it

    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, trust_env=False) as http:
            answer = await http.get(f"http://127.0.0.1:{port}/", headers={"Host": name})
    except httpx.HTTPError as exc:
        return SiteHealth(service="", status=None, error=_reason(exc))
    return SiteHealth(service="", status=answer.status_code, error=None)


def site_problem(site: SiteHealth) -> str | None:
    if site.error is not None:
        return f"site {site.service}: {site.error}"
    if site.status in GATEWAY_ERRORS:
        return f"site {site.service}: HTTP {site.status}"
    return None


async def probe_sites(port: int, sites: list[Site]) -> list[SiteHealth]:
    answers = await asyncio.gather(*(get_through_edge(port, probe_name(s, sites))
                                     for s in sites))
    return [a.model_copy(update={"service": s.service}) for s, a in zip(sites, answers,
                                                                       strict=True)]


async def node_health(port: int, sites: list[Site], down_layers: list[str],
                      events: list[SupervisionEvent]) -> NodeHealth:
    """The edge first: when it does not answer, the sites behind it are not asked."""
    problems = [f"{layer} not running" for layer in down_layers]
    edge = await get_through_edge(port, UNKNOWN_NAME)
    if edge.error is not None:
        problems.append(f"edge nginx not answering: {edge.error}")
        return NodeHealth(problems=problems, sites=[], events=events)
    answers = await probe_sites(port, sites)
    problems += [p for a in answers if (p := site_problem(a)) is not None]
    return NodeHealth(problems=problems, sites=answers, events=events)
