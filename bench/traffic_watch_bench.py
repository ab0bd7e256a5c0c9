"""How long the traffic watch takes to mark down the copy of a server whose agent stops
answering, at the default interval (DOCKYARD_TRAFFIC_CHECK_SECONDS, 10 s).

As in tests/api/test_traffic.py: a real `dockyard-agent` and its nginx on loopback serve
shop/web's site (a stdlib HTTP server stands in for the container), the API's watch runs as
in the API process, and right after a pass has seen the copy the agent is stopped
(connections refused) or frozen with SIGSTOP (connections accepted, never answered). Prints
the seconds from then until the copy is recorded down; asserts nothing.

    .venv/bin/python bench/traffic_watch_bench.py [--interval 10] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from dockyard.api.app import create_app
from dockyard.core.bootstrap import ensure_first_owner
from dockyard.core.platform import Platform
from dockyard.kernel.migrate import upgrade
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.agent.conftest import AgentProcess, spawn_agent
from tests.api.test_traffic import StandIn, node_serving_shop, until_marked_down
from tests.conftest import PASSWORD, Account, log_in, make_settings

DEFAULT = float(Settings.model_fields["traffic_check_seconds"].default)


@asynccontextmanager
async def api(root: Path) -> AsyncIterator[tuple[Platform, httpx.AsyncClient]]:
    """A migrated SQLite control plane in `root` and a client of its API."""
    settings = make_settings(root, None)
    upgrade(settings)
    ensure_key_file(settings.key_file)
    platform = Platform.open(settings)
    transport = httpx.ASGITransport(app=create_app(settings, platform))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as http:
            yield platform, http
    finally:
        await platform.close()


async def shop_owner(platform: Platform, client: httpx.AsyncClient) -> Account:
    await ensure_first_owner(platform, "owner@example.com", PASSWORD)
    owner = await log_in(client, "owner@example.com")
    for path, body in (("/api/v1/projects", {"name": "shop"}),
                       ("/api/v1/projects/shop/services", {"name": "web"})):
        answer = await client.post(path, json=body, headers=owner.headers)
        answer.raise_for_status()
    return owner


async def one_run(how: str, interval: float) -> float:
    with tempfile.TemporaryDirectory(prefix="dy-traffic-bench-") as tmp:
        root, started, stand_in = Path(tmp), list[AgentProcess](), StandIn()

        def start_agent(key_hex: str, **options: Any) -> AgentProcess:
            started.append(spawn_agent(root / f"agent-{len(started)}", bytes.fromhex(key_hex),
                                       **options))
            return started[-1]

        stand_in.start()
        try:
            async with api(root) as (platform, client):
                shop = await shop_owner(platform, client)
                node = await node_serving_shop(client, shop, platform, start_agent, stand_in,
                                               "node-1")
                return await until_marked_down(platform, node, how, interval)
        finally:
            for agent in started:
                agent.stop()
            stand_in.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for how in ("stopped", "frozen"):
        for _ in range(args.runs):
            seconds = asyncio.run(one_run(how, args.interval))
            print(f"agent {how}, checks every {args.interval:g} s: marked down "
                  f"{seconds:.1f} s later")


if __name__ == "__main__":
    main()
