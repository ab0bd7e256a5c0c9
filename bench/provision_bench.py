"""Seconds from `provision` to "ready" on the fake DigitalOcean: our part of provisioning (the
checks, the user-data, creating, waiting active, waiting for the agent's first signed answer).

The fake boots each droplet at once and starts a real agent process from its user-data
(tests/api/provision/support.py), so "ready" includes that agent's start (Python importing
Dockyard), not apt-get, pip or a real droplet's boot. For 1, 3 and 10 servers from a stock
image, then 3 from a Dockyard snapshot built on the fake: per server, the seconds from the
call to "created", "active" and "ready". SQLite, polling every 0.05 s.

Prints the figures; asserts nothing:

    .venv/bin/python bench/provision_bench.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import select

from dockyard.core import credentials, provision, snapshots
from dockyard.core.authz import Actor
from dockyard.core.bootstrap import create_owner
from dockyard.core.platform import Platform
from dockyard.kernel.migrate import upgrade
from dockyard.kernel.security import ensure_key_file
from dockyard.models.enums import Role
from dockyard.models.provision import ProvisionEvent, ProvisionRequest, SnapshotCreate
from dockyard.models.schemas import CredentialSet
from dockyard.models.tables import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.api.provision.support import Droplets
from tests.conftest import make_settings
from tests.fakes.digitalocean import TOKEN, FakeDigitalOcean

STEPS = ("created", "active", "ready")


async def timed(events: AsyncIterator[ProvisionEvent], start: float
                ) -> dict[str, dict[str, float]]:
    """Seconds from `start` to each step, by server; a failure is printed."""
    seen: dict[str, dict[str, float]] = {}
    async for event in events:
        if event.kind == "failed":
            print(f"  FAILED {event.server}: {event.message}")
        if event.kind in STEPS:
            seen.setdefault(event.server, {})[event.kind] = time.monotonic() - start
    return seen


def report(label: str, seen: dict[str, dict[str, float]]) -> None:
    parts = []
    for step in STEPS:
        values = [steps[step] for steps in seen.values() if step in steps]
        if values:
            parts.append(f"{step} median {statistics.median(values):.2f} s "
                         f"max {max(values):.2f} s")
    print(f"{label:<24} {len(seen)} server(s): " + "; ".join(parts))


async def owner(platform: Platform) -> Actor:
    user_id = await create_owner(platform, "bench@example.com", "correct-horse-battery",
                                 "bench")
    workspace_id = await platform.db.read(lambda s: s.scalar(
        select(Workspace.id).where(Workspace.name == "bench")))
    actor = Actor(user_id, str(workspace_id), Role.OWNER)
    body = CredentialSet(provider="digitalocean", token=TOKEN)
    await credentials.set_credential(platform, actor, "digitalocean", body)
    return actor


async def one_round(platform: Platform, actor: Actor, snapshot: str | None) -> None:
    for count in ((3,) if snapshot else (1, 3, 10)):
        body = ProvisionRequest(region="fra1", size="s-1vcpu-1gb", count=count,
                                snapshot=snapshot, name="bench")
        start = time.monotonic()
        seen = await timed(await provision.provision(platform, actor, body), start)
        report(f"{count} from {'a snapshot' if snapshot else 'a stock image'}", seen)


async def build_snapshot(platform: Platform, actor: Actor, droplets: Droplets) -> str:
    loop = asyncio.get_running_loop()

    def report_done(url: str) -> None:
        token = url.rstrip("/").split("/")[-2]
        asyncio.run_coroutine_threadsafe(snapshots.build_done(platform, token), loop).result()

    droplets.report_done = report_done
    start = time.monotonic()
    async for event in await snapshots.create_snapshot(platform, actor,
                                                       SnapshotCreate(region="fra1")):
        if event.kind in ("snapshot", "failed"):
            print(f"snapshot build: {event.message} after {time.monotonic() - start:.2f} s")
    droplets.report_done = None
    return (await snapshots.list_snapshots(platform, actor))[0].provider_id


async def run(rounds: int, base: Path) -> None:
    droplets = Droplets(base / "droplets")
    with FakeDigitalOcean(base / "digitalocean.json", on_boot=droplets) as fake:
        settings = make_settings(
            base, None, public_url="https://dockyard.example.com",
            digitalocean_api_url=fake.base_url, provision_poll_seconds=0.05,
            digitalocean_retry_seconds=0.01)
        ensure_key_file(settings.key_file)
        upgrade(settings)
        platform = Platform.open(settings)
        try:
            actor = await owner(platform)
            for _ in range(rounds):
                await one_round(platform, actor, None)
            snapshot = await build_snapshot(platform, actor, droplets)
            for _ in range(rounds):
                await one_round(platform, actor, snapshot)
        finally:
            droplets.stop()
            await platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("dockyard.fleet").setLevel(logging.ERROR)  # "unreachable" until ready
    with tempfile.TemporaryDirectory() as base:
        asyncio.run(run(args.rounds, Path(base)))


if __name__ == "__main__":
    main()
