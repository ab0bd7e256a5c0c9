"""Memory and idle CPU of the control plane and of the node agent, started as users start them.

The control plane: `dockyard up` on a fresh data dir (SQLite, no Redis); RSS and PSS of the API
and the worker (each with its child processes) after startup, then after a load run (GETs and
project writes; the API's request metrics enqueue jobs for the worker), and CPU seconds each
spent over an idle window (`--idle`, 60 s; `--quick`: 15 s), from /proc/<pid>/stat. The agent:
`dockyard-agent` on this machine's Docker, RSS after startup and idle CPU the same way.
`--embedded`: also `dockyard up` with DOCKYARD_WORKER=embedded (the API runs the jobs).

    flock /tmp/dockyard-bench.lock .venv/bin/python bench/footprint_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.agent.conftest import spawn_agent
from tests.live import dockyard, live_env, ok
from tests.pg import free_port

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Sample:
    rss_mb: float
    pss_mb: float


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (an API may run several worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            todo += [int(c) for c in children.read_text().split()]
    return found


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def memory(pid: int, children: bool = True) -> Sample:
    pids = tree(pid) if children else [pid]
    rss = sum(int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_KB for p in pids)
    return Sample(rss / 1024, sum(_pss_kb(p) for p in pids) / 1024)


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU seconds per idle minute of each process (tree)."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(pid) - before[name]) * 60 / seconds for name, pid in pids.items()}


def load(url: str, token: str, requests: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for i in range(requests):
            if i % 50 == 0:
                answer = client.post("/api/v1/projects", json={"name": f"load-{i}"})
            else:
                answer = client.get("/api/v1/projects")
            answer.raise_for_status()


def settle(seconds: float) -> None:
    time.sleep(seconds)  # let startup work (first periodic jobs, metric flushes) finish


def row(name: str, sample: Sample, cpu: float | None = None) -> str:
    cpu_text = f"{cpu:10.2f}" if cpu is not None else f"{'':>10}"
    return f"{name:<40}{sample.rss_mb:9.1f}{sample.pss_mb:9.1f}{cpu_text}"


def measure(env: dict[str, str], pids: dict[str, int], args: argparse.Namespace,
            show: Callable[[str], None]) -> None:
    settle(args.settle)
    for name, pid in pids.items():
        show(row(f"{name}, after startup", memory(pid)))
    started = time.monotonic()
    load(f"http://127.0.0.1:{env['DOCKYARD_PORT']}", _token(env), args.requests)
    show(f"(load run: {args.requests} requests in {time.monotonic() - started:.1f} s)")
    settle(args.settle)
    after = {name: memory(pid) for name, pid in pids.items()}
    cpu = idle_cpu(pids, args.idle)
    for name in pids:
        show(row(f"{name}, after load, idle", after[name], cpu[name]))
    if len(pids) > 1:
        total = Sample(sum(s.rss_mb for s in after.values()),
                       sum(s.pss_mb for s in after.values()))
        show(row(" + ".join(pids), total, sum(cpu.values())))


def control_plane(base: Path, args: argparse.Namespace, show: Callable[[str], None]) -> None:
    env = live_env(base, free_port())
    ok(dockyard("up", env=env))
    data = Path(env["DOCKYARD_DATA_DIR"])
    pids = {name: int((data / f"{name}.pid").read_text()) for name in ("api", "worker")}
    try:
        measure(env, pids, args, show)
    finally:
        dockyard("down", env=env)


def embedded(base: Path, args: argparse.Namespace, show: Callable[[str], None]) -> None:
    """`dockyard up` with DOCKYARD_WORKER=embedded: the API process runs the jobs too."""
    env = {**live_env(base, free_port()), "DOCKYARD_WORKER": "embedded"}
    ok(dockyard("up", env=env))
    pid = int((Path(env["DOCKYARD_DATA_DIR"]) / "api.pid").read_text())
    try:
        measure(env, {"api with the worker inside": pid}, args, show)
    finally:
        dockyard("down", env=env)


def _token(env: dict[str, str]) -> str:
    config = Path(env["XDG_CONFIG_HOME"]) / "dockyard" / "config.json"
    return str(json.loads(config.read_text())["token"])


def agent(base: Path, args: argparse.Namespace, show: Callable[[str], None]) -> None:
    docker = {"DOCKYARD_AGENT_DOCKER_HOST": "unix:///var/run/docker.sock"}
    process = spawn_agent(base / "agent", os.urandom(32), env=docker)
    try:
        settle(args.settle)
        pid = process.child.pid
        sample = memory(pid, children=False)  # its nginx layers are not the agent
        show(row("agent, idle", sample, idle_cpu({"agent": pid}, args.idle)["agent"]))
    finally:
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 15 s idle window, not 60 s")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--skip-agent", action="store_true")
    parser.add_argument("--skip-control-plane", action="store_true", help="the agent only")
    parser.add_argument("--embedded", action="store_true", help="also the worker in the API")
    args = parser.parse_args()
    args.idle = 15.0 if args.quick else 60.0
    print(f"{'process':<40}{'RSS MB':>9}{'PSS MB':>9}{'CPU s/min':>10}   (idle {args.idle:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        (Path(tmp) / "agent").mkdir()
        if not args.skip_control_plane:
            control_plane(Path(tmp), args, lambda line: print(line, flush=True))
        if args.embedded:
            (Path(tmp) / "embedded").mkdir()
            embedded(Path(tmp) / "embedded", args, lambda line: print(line, flush=True))
        if not args.skip_agent:
            agent(Path(tmp), args, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
