"""Where the API's request time goes: cProfile of one API process (`dockyard serve`, one
worker) while wrk loads one case of bench/api_bench.py, then the CPU time (own time of each
function) grouped by where the code lives, and the top functions.

The profiler is switched on after the warm-up and off before the server stops, so start-up
is not in it. cProfile slows down Python calls (most of all many small ones, as an ORM
makes), so read the shares, not the absolute times. Prints; asserts nothing.

    .venv/bin/python bench/api_profile.py [--case list-token] [--database sqlite]
        [--seconds 10] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from api_bench import (
    CASES,
    Load,
    database,
    dockyard,
    dockyard_env,
    seed,
    wait_answering,
)

DB, WEB, HTTP = ("database driver (sqlite3, asyncpg)", "FastAPI, Starlette, pydantic",
                 "HTTP server and event loop")
CRYPTO = "JWT, hashing, encryption"
# Where a function's file lives -> its group; the first match wins.
GROUPS = (
    ("sqlalchemy", "SQLAlchemy (ORM, Core, pool)"),
    ("sqlite3", DB), ("asyncpg", DB), ("aiosqlite", DB),
    ("fastapi", WEB), ("starlette", WEB), ("pydantic", WEB),
    ("uvicorn", HTTP), ("httptools", HTTP), ("uvloop", HTTP), ("asyncio", HTTP), ("anyio", HTTP),
    ("dockyard", "Dockyard (src/dockyard)"),
    ("jwt", CRYPTO), ("hashlib", CRYPTO), ("cryptography", CRYPTO), ("hmac", CRYPTO),
    ("logging", "logging"), ("json", "JSON (stdlib)"),
)
IDLE = ("select.epoll", "'poll' of 'select.epoll'", "run_forever' of 'uvloop")


def group_of(filename: str, function: str) -> str:
    where = f"{filename} {function}".lower()
    for needle, group in GROUPS:
        if needle in where:
            return group
    return "other (stdlib, builtins)"


def grouped(stats: pstats.Stats) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Own time per group, and (own time, name) of every function, idle waiting left out."""
    groups: dict[str, float] = defaultdict(float)
    functions = []
    for (filename, line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        name = f"{filename}:{line}({function})"
        if any(marker in name for marker in IDLE):
            continue
        groups[group_of(filename, function)] += own
        functions.append((own, name))
    return groups, sorted(functions, reverse=True)


def report(profile: Path, requests: float, top: int) -> None:
    groups, functions = grouped(pstats.Stats(str(profile)))
    total = sum(groups.values())
    print(f"\nCPU time under load, idle waiting left out: {total:.2f} s for {requests:.0f} "
          f"requests = {total / max(requests, 1) * 1000:.2f} ms per request (profiled)")
    for name, seconds in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"  {name:38} {seconds / total:6.1%}  {seconds / max(requests, 1) * 1000:6.3f} ms")
    print(f"\ntop {top} functions by own time:")
    for own, name in functions[:top]:
        print(f"  {own / total:6.1%}  {_short(name)}")
    print("\nDockyard's functions by cumulative time (what they call included), and calls:")
    stats = pstats.Stats(str(profile))
    ours = [(row[3], row[1], f"{f}:{line}({fn})") for (f, line, fn), row in
            stats.stats.items() if "/dockyard/" in f]  # type: ignore[attr-defined]
    for cumulative, calls, name in sorted(ours, reverse=True)[:top]:
        print(f"  {cumulative / total:6.1%}  {calls:8d} calls  {_short(name)}")


def _short(name: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in name:
            return name.split(marker, 1)[1]
    return name


def serve_profiled(output: str, process: str) -> None:
    """`dockyard serve` (or `dockyard worker`) in this process; SIGUSR1 starts the profiler,
    SIGUSR2 writes it."""
    profiler = cProfile.Profile()

    def start(*_: object) -> None:
        profiler.enable()

    def write(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(output)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, write)
    if process == "worker":
        from dockyard.cli.worker import worker

        worker()
    else:
        from dockyard.cli.server import serve

        serve()


def start_profiled(env: dict[str, str], out: Path, process: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, __file__, "--serve-profiled", str(out), "--process", process]
    return subprocess.Popen(argv, env={**env, "PYTHONPATH": str(Path(__file__).parent)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_case(options: argparse.Namespace, database_url: str | None, out: Path) -> float:
    """Seed through `dockyard up`, then load the profiled `dockyard serve`; returns req/s."""
    case = CASES[options.case]
    with tempfile.TemporaryDirectory(prefix="dy-api-profile-") as base:
        if options.process == "worker":
            return profile_worker(options, Path(base), database_url, out)
        with dockyard(Path(base), database_url, "1", True) as (url, env):
            credentials = seed(url, env)
        env = dockyard_env(Path(base), database_url, "1", not options.no_metrics)
        server = start_profiled(env, out, "api")
        try:
            url = f"http://127.0.0.1:{env['DOCKYARD_PORT']}"
            wait_answering(f"{url}/healthz", server)
            rate = load_profiled(options, url, credentials.headers(case), server, out)
        finally:
            server.terminate()
            server.wait(30)
    return rate * float(options.seconds)


def profile_worker(options: argparse.Namespace, base: Path, database_url: str | None,
                   out: Path) -> float:
    """`dockyard up`, its worker replaced by a profiled one; wrk loads the API (which is not
    profiled) and the worker stores the request records. Returns requests served."""
    with dockyard(base, database_url, "1", True) as (url, env):
        credentials = seed(url, env)
        pid = int((Path(env["DOCKYARD_DATA_DIR"]) / "worker.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        worker = start_profiled(env, out, "worker")
        try:
            rate = load_profiled(options, url, credentials.headers(CASES[options.case]),
                                 worker, out)
        finally:
            worker.terminate()
            worker.wait(30)
    return rate * float(options.seconds)


def load_profiled(options: argparse.Namespace, url: str, headers: dict[str, str],
                  process: subprocess.Popen[bytes], out: Path) -> float:
    case = CASES[options.case]
    Load(options.warmup, 0, options.connections).run(url, case, headers)
    process.send_signal(signal.SIGUSR1)
    rate = Load(options.seconds, 0, options.connections).run(url, case, headers)[0]
    process.send_signal(signal.SIGUSR2)
    _wait_written(out)
    print(f"{case.name} on {options.database}: {rate:.0f} req/s while the {options.process} "
          "was profiled")
    return rate


def _wait_written(path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            time.sleep(0.5)  # dump_stats writes in one go; let it finish
            return
        time.sleep(0.1)
    raise SystemExit("the profile was not written")


def main(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dy-prof-") as scratch, \
            database(options.database) as database_url:
        out = Path(scratch) / "api.prof"
        requests = profile_case(options, database_url, out)
        report(out, requests, options.top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="list-token")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-metrics", action="store_true", help="request metrics off")
    parser.add_argument("--process", choices=("api", "worker"), default="api", help=(
        "profile the API (alone, no worker), or the worker storing the request records of "
        "the API it serves beside"))
    parser.add_argument("--serve-profiled", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    os.environ.setdefault("DOCKYARD_API_WORKERS", "1")
    if parsed.serve_profiled:
        serve_profiled(parsed.serve_profiled, parsed.process)
    else:
        main(parsed)
