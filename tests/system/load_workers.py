"""Writer processes for the SQLite load test; each writes distinct variables to its own
services of project `load` and prints one JSON summary line. Exit code 1 on any failure.

    python load_workers.py library PREFIX COUNT USER_ID WORKSPACE_ID   (settings from env)
    python load_workers.py http PREFIX COUNT THREADS URL TOKEN
    python load_workers.py cli PREFIX ROUNDS KEYS_PER_ROUND DOCKYARD   (login from env)

Variable i of a worker goes to service PREFIX-(i % SPREAD), so that no service grows large.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

PROJECT = "load"
LIBRARY_CONCURRENCY = 4
SPREAD = 8


def key(prefix: str, index: int) -> str:
    return f"{prefix.upper().replace('-', '_')}_{index:05d}"


def service_for(prefix: str, index: int) -> str:
    return f"{prefix}-{index % SPREAD}"


STARTED = time.monotonic()


def report(writes: int, errors: list[str]) -> int:
    seconds = round(time.monotonic() - STARTED, 1)
    summary = {"writes": writes, "seconds": seconds, "errors": errors[:20]}
    print(json.dumps({**summary, "error_count": len(errors)}))
    return 1 if errors else 0


async def library_writes(prefix: str, count: int, user_id: str, workspace_id: str) -> int:
    from dockyard.core.authz import Actor
    from dockyard.core.env import patch_env
    from dockyard.core.platform import Platform
    from dockyard.kernel.settings import Settings
    from dockyard.models.enums import Role
    from dockyard.models.schemas import EnvPatch, EnvVarItem

    platform = Platform.open(Settings())
    actor = Actor(user_id, workspace_id, Role.OWNER)
    gate = asyncio.Semaphore(LIBRARY_CONCURRENCY)
    errors: list[str] = []

    async def write(index: int) -> None:
        item = EnvVarItem(key=key(prefix, index), value=str(index))
        body = EnvPatch(set=[item])
        async with gate:
            try:
                await patch_env(platform, actor, PROJECT, service_for(prefix, index), body)
            except Exception as exc:  # every failure is reported, none hidden
                errors.append(f"{item.key}: {type(exc).__name__}: {exc}")

    try:
        await asyncio.gather(*(write(i) for i in range(count)))
    finally:
        await platform.close()
    return report(count - len(errors), errors)


def http_writes(prefix: str, count: int, threads: int, url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/api/v1/projects/{PROJECT}/services"

    def write_share(first: int) -> list[str]:
        failures = []
        with httpx.Client(headers=headers, timeout=60) as http:
            for index in range(first, count, threads):
                name = key(prefix, index)
                path = f"{base}/{service_for(prefix, index)}/env/{name}"
                try:
                    answer = http.put(path, json={"value": str(index)})
                except httpx.HTTPError as exc:
                    failures.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                if answer.status_code != 200:
                    failures.append(f"{name}: HTTP {answer.status_code} {answer.text[:200]}")
        return failures

    with ThreadPoolExecutor(threads) as pool:
        errors = [e for failures in pool.map(write_share, range(threads)) for e in failures]
    return report(count - len(errors), errors)


def cli_writes(prefix: str, rounds: int, per_round: int, dockyard: str) -> int:
    """Round r sets variables r*per_round ... (r+1)*per_round-1 of service PREFIX-(r % SPREAD)."""
    errors = []
    for round_ in range(rounds):
        first = round_ * per_round
        pairs = [f"{key(prefix, first + i)}={first + i}" for i in range(per_round)]
        service = service_for(prefix, round_)
        argv = [dockyard, "env", "set", *pairs, "-p", PROJECT, "-s", service]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0 or done.stderr:
            errors.append(f"round {round_}: exit {done.returncode}: {done.stderr.strip()}")
    return report((rounds - len(errors)) * per_round, errors)


def main(argv: list[str]) -> int:
    mode, prefix, count = argv[0], argv[1], int(argv[2])
    if mode == "library":
        return asyncio.run(library_writes(prefix, count, argv[3], argv[4]))
    if mode == "http":
        return http_writes(prefix, count, int(argv[3]), argv[4], argv[5])
    if mode == "cli":
        return cli_writes(prefix, count, int(argv[3]), argv[4])
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
