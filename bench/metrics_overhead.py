"""Requests per second of an authenticated listing (GET /api/v1/projects) with the request
metrics middleware off and on (records to the SQLite outbox, or to Redis), served by
uvicorn in a subprocess on SQLite, loaded by an httpx client at a fixed concurrency.

    .venv/bin/python bench/metrics_overhead.py [--seconds 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from queue_bench import free_port, start_redis

from dockyard.core.auth import login
from dockyard.core.authz import Actor
from dockyard.core.bootstrap import ensure_first_owner
from dockyard.core.platform import Platform
from dockyard.core.projects import create_project
from dockyard.kernel.migrate import upgrade
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.enums import Role
from dockyard.models.schemas import ProjectCreate

PASSWORD = "bench-password-1"  # noqa: S105  (a throwaway account)


async def prepare(data_dir: Path) -> str:
    """A migrated database with an owner and a few projects; returns the owner's JWT."""
    settings = Settings.model_validate({"data_dir": data_dir})
    upgrade(settings)
    ensure_key_file(settings.key_file)
    platform = Platform.open(settings)
    await ensure_first_owner(platform, "owner@example.com", PASSWORD)
    token = (await login(platform, "owner@example.com", PASSWORD, "bench")).access_token
    from dockyard.core.auth import authenticate

    me = await authenticate(platform, token)
    for n in range(5):
        await create_project(platform, Actor(me.user_id, me.workspace_id, Role.OWNER),
                             ProjectCreate(name=f"project-{n}"))
    await platform.close()
    return token


def serve(
    data_dir: Path, port: int, metrics: bool, redis_url: str | None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DOCKYARD_DATA_DIR": str(data_dir), "DOCKYARD_LOG_LEVEL": "WARNING",
           "DOCKYARD_REQUEST_METRICS": str(metrics).lower(),
           "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    argv = [sys.executable, "-m", "uvicorn", "--factory", "metrics_app:build", "--port",
            str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(argv, env=env)


async def wait_healthy(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the server did not start")


async def load(url: str, token: str, seconds: float, concurrency: int) -> tuple[float, float, int]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as http:

        async def user(deadline: float) -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                answer = await http.get("/api/v1/projects")
                latencies.append(time.perf_counter() - started)
                failures += answer.status_code != 200

        await asyncio.gather(*(user(time.perf_counter() + 1) for _ in range(concurrency)))
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(user(began + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, statistics.mean(latencies) * 1000, failures


async def main(seconds: float, concurrency: int) -> None:
    redis_process, redis_port, redis_dir = start_redis()
    rows = []
    try:
        for label, metrics, redis_url in (
            ("metrics off", False, None),
            ("metrics on, SQLite outbox", True, None),
            ("metrics on, Redis", True, f"redis://127.0.0.1:{redis_port}/0"),
        ):
            data_dir = Path(tempfile.mkdtemp(prefix="dy-metrics-bench-"))
            token = await prepare(data_dir)
            port = free_port()
            server = serve(data_dir, port, metrics, redis_url)
            try:
                await wait_healthy(f"http://127.0.0.1:{port}")
                rows.append((label, *await load(f"http://127.0.0.1:{port}", token, seconds,
                                                concurrency)))
            finally:
                server.terminate()
                server.wait()
                shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        redis_process.terminate()
        redis_process.wait()
        shutil.rmtree(redis_dir, ignore_errors=True)
    print(f"GET /api/v1/projects, JWT auth, SQLite, 1 uvicorn worker, concurrency {concurrency}, "
          f"{seconds:.0f} s each, {os.cpu_count()} cores (client and server share them)")
    print(f"{'configuration':28} {'req/s':>8} {'avg ms':>8} {'failed':>7}")
    for label, rate, average, failed in rows:
        print(f"{label:28} {rate:8.0f} {average:8.2f} {failed:7d}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    asyncio.run(main(options.seconds, options.concurrency))
