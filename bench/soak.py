"""Soak: N cycles of env change, code deploy and rollback on a real stage under the strict client,
with the size of everything that could grow printed every K cycles.

The stage of bench/deploy_bench.py (`dockyard up` + a 3-node namespace cluster, root); its
keep-alive client without retries at fixed concurrency through the first node's nginx while
each cycle sets an env variable and deploys the release, deploys changed code (one file of the
example app differs every cycle, so every build makes a new layer) and rolls back. Each row:
RSS of the API, the worker and the first node's agent; that node's Docker (images, their
layers, containers, build cache, all it keeps on disk); the control plane's data dir, its
SQLite database and WAL, the registry; the node's nginx logs, its containers' json-file logs
and the agent's, dockerd's and the control plane's own logs. Sizes in MB (10^6 bytes). At the
end, the database's largest tables. Exits 1 if a request or a deployment failed. Settings are
the defaults a new user gets.

    .venv/bin/python bench/soak.py [--cycles 100] [--every 10] [--concurrency 32] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import docker
from deploy_bench import PROJECT, QUICK, load_until
from nginx_reload import Tally

from dockyard.providers.cluster import NodeRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.e2e.stage import EXAMPLE, Stage, first_node, staged

SERVICE = "web"
MB = 1_000_000


@dataclass
class Sizes:
    api_rss: int
    worker_rss: int
    agent_rss: int
    images: int  # a count
    image_layers: int
    containers: int  # a count
    build_cache: int
    docker_disk: int
    data_dir: int
    database: int
    wal: int
    registry: int
    nginx_logs: int
    container_logs: int
    own_logs: int


COUNTS = {"images", "containers"}
HEADS = ("API", "worker", "agent", "images", "layers", "ctrs", "bcache", "docker", "data",
         "db", "db-wal", "registry", "nginx", "ctr-log", "own-log")


def rss(pid_file: Path) -> int:
    """Resident bytes of the process the pid file names (0 when there is none)."""
    try:
        status = Path(f"/proc/{int(pid_file.read_text())}/status").read_text()
    except (FileNotFoundError, ValueError):
        return 0
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def file_bytes(paths: Iterable[Path]) -> int:
    """Bytes of the regular files among `paths` (one rotated away meanwhile counts 0)."""
    total = 0
    for path in paths:
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def tree_bytes(directory: Path) -> int:
    return file_bytes(directory.rglob("*"))


def docker_sizes(node: NodeRecord) -> tuple[int, int, int, int, int]:
    """Images, their layers' bytes, containers, build cache bytes and Docker's disk use in all."""
    with docker.APIClient(base_url=node.docker.host, timeout=120) as client:
        df = client.df()
    cache = sum(entry["Size"] for entry in df.get("BuildCache") or [])
    writable = sum(entry.get("SizeRw") or 0 for entry in df.get("Containers") or [])
    volumes = sum(max(v["UsageData"]["Size"], 0) for v in df.get("Volumes") or [])
    layers = df["LayersSize"]
    return (len(df.get("Images") or []), layers, len(df.get("Containers") or []), cache,
            layers + writable + volumes + cache)


def own_logs(data_dir: Path, node: NodeRecord) -> int:
    """The control plane's logs, the node agent's and its dockerd's, rotated files included."""
    return (tree_bytes(data_dir / "logs") + file_bytes(node.agent_dir.glob("agent.log*"))
            + file_bytes(node.docker.root.glob("dockerd.log*")))


def measure(stage: Stage, node: NodeRecord) -> Sizes:
    data = Path(stage.env["DOCKYARD_DATA_DIR"])
    nginx = node.agent_dir / "nginx"
    container_logs = (node.docker.root / "data" / "containers").glob("*/*-json.log*")
    return Sizes(rss(data / "api.pid"), rss(data / "worker.pid"),
                 rss(node.agent_dir / "agent.pid"), *docker_sizes(node), tree_bytes(data),
                 file_bytes([data / "dockyard.db"]), file_bytes([data / "dockyard.db-wal"]),
                 tree_bytes(stage.root / "registry"),
                 file_bytes(p for p in nginx.rglob("*") if p.parent.name == "logs"),
                 file_bytes(container_logs), own_logs(data, node))


def cells(sizes: Sizes) -> str:
    return "".join(f"{value:>9}" if name in COUNTS else f"{value / MB:>9.1f}"
                   for name, value in zip((f.name for f in fields(Sizes)), astuple(sizes),
                                          strict=True))


def row(cycle: int, began: float, tally: Tally, sizes: Sizes) -> None:
    total = tally.ok + tally.failed
    print(f"{cycle:>6}{time.monotonic() - began:>8.0f}{total:>10}{tally.failed:>7}"
          f"{cells(sizes)}", flush=True)


def header() -> None:
    print(f"{'cycle':>6}{'s':>8}{'requests':>10}{'failed':>7}"
          + "".join(f"{head:>9}" for head in HEADS))
    print("(RSS, layers, build cache, Docker, data dir, db, registry and logs in MB; "
          "images and containers counted)", flush=True)


@dataclass
class Soak:
    stage: Stage
    node: NodeRecord
    code: Path  # a copy of the example app, one file changed every cycle
    outcomes: list[str]

    def step(self, events: list[dict[str, object]]) -> None:
        self.outcomes.append(str(events[-1].get("status")))

    def env_change(self, cycle: int) -> None:
        body = {"set": [{"key": "GREETING", "value": f"cycle {cycle}"}], "unset": []}
        answer = self.stage.http.patch(f"/projects/{PROJECT}/services/{SERVICE}/env", json=body)
        assert answer.status_code == 200, answer.text
        self.step(self.stage.deploy({"project": PROJECT, "service": SERVICE,
                                     "source": {"kind": "release"}, "params": QUICK}))

    def code_deploy(self, cycle: int) -> None:
        (self.code / "soak_cycle.txt").write_text(f"{cycle}\n")
        self.step(self.stage.deploy_archive(self.code, project=PROJECT, service=SERVICE,
                                            server=[self.node.name], **QUICK))

    def rollback(self) -> None:
        self.step(self.stage.rollback({"project": PROJECT, "service": SERVICE}))

    def cycle(self, number: int) -> None:
        self.env_change(number)
        self.code_deploy(number)
        self.rollback()


def churn(soak: Soak, cycles: int, every: int, tally: Tally) -> list[Sizes]:
    began = time.monotonic()
    rows = [measure(soak.stage, soak.node)]
    row(0, began, tally, rows[0])
    for number in range(1, cycles + 1):
        soak.cycle(number)
        if number % every == 0 or number == cycles:
            rows.append(measure(soak.stage, soak.node))
            row(number, began, tally, rows[-1])
    return rows


async def under_load(soak: Soak, concurrency: int, cycles: int, every: int
                     ) -> tuple[Tally, float, list[Sizes]]:
    tally, stop = Tally(), asyncio.Event()
    began = time.monotonic()
    load = asyncio.create_task(load_until(soak.stage, concurrency, stop, tally))
    try:
        rows = await asyncio.to_thread(churn, soak, cycles, every, tally)
    finally:
        stop.set()
        await load
    return tally, time.monotonic() - began, rows


def summary(tally: Tally, seconds: float, rows: list[Sizes], outcomes: list[str]) -> None:
    total = tally.ok + tally.failed
    print(f"requests: {total} in {seconds:.0f} s ({total / seconds:.0f}/s); failed "
          f"{tally.failed} {tally.errors}; succeeded when retried once: "
          f"{tally.saved_by_one_retry}")
    print(f"deployments: {len(outcomes)}, succeeded {outcomes.count('succeeded')}")
    middle, last = rows[len(rows) // 2], rows[-1]
    change = Sizes(*(b - a for a, b in zip(astuple(middle), astuple(last), strict=True)))
    print(f"{'change over the last half':<31}{cells(change)}")


def largest_tables(database: Path, top: int = 6) -> None:
    """Rows of the database's largest tables (by rows), read-only beside the running API."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}  # noqa: S608
    biggest = sorted(rows.items(), key=lambda item: -item[1])[:top]
    print("largest tables (rows): " + ", ".join(f"{name} {count}" for name, count in biggest))
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        [(last_seq, lost)] = db.execute("SELECT sum(seq), sum(lost) FROM log_cursors")
    print(f"container log lines: {last_seq} read by the agents, {lost} of them dropped from "
          "a full agent buffer before the control plane collected them")


def soak(concurrency: int, cycles: int, every: int) -> bool:
    passed = False
    with tempfile.TemporaryDirectory(prefix="dy-soak-") as directory:
        code = Path(directory) / "app"
        shutil.copytree(EXAMPLE, code)
        for stage in staged(Path(directory) / "stage"):
            _, node = first_node(stage)
            stage.ensure_service(PROJECT, SERVICE)
            run = Soak(stage, node, code, [])
            run.code_deploy(0)
            header()
            tally, seconds, rows = asyncio.run(under_load(run, concurrency, cycles, every))
            summary(tally, seconds, rows, run.outcomes)
            largest_tables(Path(stage.env["DOCKYARD_DATA_DIR"]) / "dockyard.db")
            passed = tally.failed == 0 and set(run.outcomes) == {"succeeded"}
    return passed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--every", type=int, default=10, help="a row every K cycles")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="3 cycles, a row after each")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.cycles, arguments.every = 3, 1
    sys.exit(0 if soak(arguments.concurrency, arguments.cycles, arguments.every) else 1)
