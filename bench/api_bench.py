"""API throughput and latency, in one run, for the same machine and client (wrk, keep-alive):
a bare FastAPI hello endpoint served with Dockyard's uvicorn options, then Dockyard itself
(`dockyard up` in a temporary data dir, as users start it) on SQLite and on PostgreSQL:
`/healthz`, the project list with a JWT and with an API token, one project, and an env
write (PUT of one variable), with request metrics on; the list again with metrics off.
Prints a table; asserts nothing.

    .venv/bin/python bench/api_bench.py [--quick] [--seconds 10] [--warmup 2]
        [--connections 16] [--databases sqlite,postgres] [--workers default,1,2]
        [--env NAME=VALUE] [--source OLD/src --without uvloop,httptools]
        [--cases list-token --metrics on,off,on,off --no-bare]

Each row also shows the CPU seconds the API and the worker processes used while wrk ran
(from /proc), so the work a request leaves to the worker (its metrics record) is counted.

`--env` sets a setting on every server (DOCKYARD_ACCESS_LOG=true); `--source` serves the
dockyard package of another checkout (`git archive REV src | tar -x -C OLD`) and
`--without` keeps modules from importing, for "before" figures from the same client.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import bring_up, live_env, stop  # noqa: E402
from tests.pg import free_port, start_postgres  # noqa: E402

WRK_HINT = "wrk is missing: apt-get install -y wrk"
ENV_KEY = "BENCH_VALUE"
EXTRA_ENV: dict[str, str] = {}  # --env: settings of every server started (a variant to compare)
# A sitecustomize that makes some modules fail to import, so uvicorn's "auto" choices fall
# back to what they use without them (--without uvloop,httptools: asyncio and h11).
BLOCKER = """import os, sys
BLOCKED = set(os.environ.get("BENCH_WITHOUT", "").split(","))
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} left out by bench/api_bench.py --without")
sys.meta_path.insert(0, Blocker())
"""


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    credential: str  # "jwt", "token" or "" (no Authorization header)
    method: str = "GET"
    body: str = ""


@dataclass(frozen=True)
class Figure:
    case: str
    database: str
    workers: str
    metrics: bool
    rate: float
    average_ms: float
    p99_ms: float
    errors: int
    api_cpu: float = 0.0
    worker_cpu: float = 0.0


HEALTHZ = Case("/healthz", "/healthz", "")
LIST_JWT = Case("list projects (JWT)", "/api/v1/projects", "jwt")
LIST_TOKEN = Case("list projects (API token)", "/api/v1/projects", "token")
READ_ONE = Case("one project (API token)", "/api/v1/projects/project-0", "token")
ENV_WRITE = Case("env write PUT (API token)",
                 f"/api/v1/projects/project-0/services/web/env/{ENV_KEY}", "token", "PUT",
                 '{"value": "v"}')
METRICS_ON = (HEALTHZ, LIST_JWT, LIST_TOKEN, READ_ONE, ENV_WRITE)
METRICS_OFF = (LIST_TOKEN,)
CASES = {"healthz": HEALTHZ, "list-jwt": LIST_JWT, "list-token": LIST_TOKEN,
         "read-one": READ_ONE, "env-write": ENV_WRITE}


def wrk_script(case: Case, headers: dict[str, str], directory: Path) -> Path:
    """A wrk Lua script sending this case's method, headers and body."""
    lines = [f'wrk.method = "{case.method}"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    if case.body:
        lines += ['wrk.headers["Content-Type"] = "application/json"',
                  f"wrk.body = '{case.body}'"]
    script = directory / "case.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    """Requests/s, average and p99 latency in ms, and failed requests (non-2xx/3xx, socket
    errors) from `wrk --latency` output."""
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    average = _ms(re.search(r"Latency\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99(?:\.000)?%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    for group in re.findall(r"Socket errors: (.*)", output):
        errors += sum(int(n) for n in re.findall(r"\d+", group))
    return rate, average, p99, errors


def wrk(url: str, script: Path, seconds: float, connections: int) -> str:
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--latency", "-s", str(script), url]
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise SystemExit(WRK_HINT) from None


@dataclass(frozen=True)
class Load:
    seconds: float
    warmup: float
    connections: int

    def run(self, base: str, case: Case, headers: dict[str, str]) -> tuple[float, float,
                                                                          float, int]:
        with tempfile.TemporaryDirectory(prefix="dy-wrk-") as directory:
            script = wrk_script(case, headers, Path(directory))
            if self.warmup:
                wrk(base + case.path, script, self.warmup, self.connections)
            return parse_wrk(wrk(base + case.path, script, self.seconds, self.connections))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its children that ended (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(n) for n in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def processes(env: dict[str, str]) -> tuple[list[int], list[int]]:
    """The pids of the API (its uvicorn workers too) and of the worker."""
    data = Path(env["DOCKYARD_DATA_DIR"])
    api, worker = (int((data / f"{name}.pid").read_text()) for name in ("api", "worker"))
    return [api, *children(api)], [worker]


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(n) for n in (task / "children").read_text().split()]
    return found


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


# -- the bare endpoint ---------------------------------------------------------------------

def hello_app() -> object:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def serve_hello(port: int, workers: str) -> None:
    """Run the bare app the way `dockyard serve` runs the API (same uvicorn options)."""
    import uvicorn

    from dockyard.cli import server
    from dockyard.kernel.logging import configure_logging
    from dockyard.kernel.settings import Settings

    os.environ["DOCKYARD_PORT"] = str(port)
    if workers != "default":
        os.environ["DOCKYARD_API_WORKERS"] = workers
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    options = getattr(server, "uvicorn_options", _options_before_issue_16)(settings)
    if options.get("workers", 1) > 1:
        uvicorn.run("api_bench:hello_app", factory=True, app_dir=str(Path(__file__).parent),
                    **options)
    else:
        uvicorn.run(hello_app(), **options)  # type: ignore[arg-type]


def _options_before_issue_16(settings: Any) -> dict[str, Any]:
    """What `dockyard serve` passed to uvicorn before it had `uvicorn_options` (--source)."""
    return {"host": settings.host, "port": settings.port, "log_config": None,
            "timeout_graceful_shutdown": 10}


@contextmanager
def hello_server(workers: str) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve-hello", str(port), "--workers", workers]
    with open(os.devnull, "wb") as quiet:
        process = subprocess.Popen(argv, stdout=quiet, stderr=quiet, cwd=ROOT,
                                   env={**os.environ, **EXTRA_ENV})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(f"{url}/hello", process)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def wait_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


# -- Dockyard --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    jwt: str
    token: str

    def headers(self, case: Case) -> dict[str, str]:
        value = {"jwt": self.jwt, "token": self.token, "": ""}[case.credential]
        return {"Authorization": f"Bearer {value}"} if value else {}


def dockyard_env(base: Path, database_url: str | None, workers: str,
                 metrics: bool) -> dict[str, str]:
    env = live_env(base, free_port())
    env["DOCKYARD_REQUEST_METRICS"] = str(metrics).lower()
    env["DOCKYARD_AGENT_POLL_SECONDS"] = "0"
    env.update(EXTRA_ENV)
    if database_url:
        env["DATABASE_URL"] = database_url
    if workers != "default":
        env["DOCKYARD_API_WORKERS"] = workers
    return env


@contextmanager
def dockyard(base: Path, database_url: str | None, workers: str,
             metrics: bool) -> Iterator[tuple[str, dict[str, str]]]:
    env = dockyard_env(base, database_url, workers, metrics)
    try:
        bring_up(env)
        yield f"http://127.0.0.1:{env['DOCKYARD_PORT']}", env
    finally:
        stop(env)


def seed(url: str, env: dict[str, str]) -> Credentials:
    """Five projects, a service `web` in the first; a JWT and an API token of the owner."""
    form = {"username": env["DOCKYARD_ADMIN_EMAIL"], "password": env["DOCKYARD_ADMIN_PASSWORD"]}
    jwt = httpx.post(f"{url}/api/v1/auth/token", data=form).json()["access_token"]
    http = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {jwt}"})
    body = {"name": "bench", "password": env["DOCKYARD_ADMIN_PASSWORD"]}
    token = http.post("/auth/tokens", json=body).json()["token"]
    for n in range(5):
        http.post("/projects", json={"name": f"project-{n}"})
    http.post("/projects/project-0/services", json={"name": "web"})
    return Credentials(jwt, token)


def plan(options: argparse.Namespace) -> list[tuple[bool, tuple[Case, ...]]]:
    """(metrics on?, cases) per server start: the default plan, or --cases and --metrics."""
    if not options.cases and not options.metrics:
        return [(True, METRICS_ON), (False, METRICS_OFF)]
    cases = tuple(CASES[name] for name in (options.cases or ",".join(CASES)).split(","))
    return [(flag == "on", cases) for flag in (options.metrics or "on,off").split(",")]


def measure(load: Load, url: str, env: dict[str, str], case: Case,
            headers: dict[str, str]) -> tuple[float, float, float, int, float, float]:
    api, worker = processes(env)
    before = total_cpu(api), total_cpu(worker)
    rate, average, p99, errors = load.run(url, case, headers)
    return rate, average, p99, errors, total_cpu(api) - before[0], total_cpu(worker) - before[1]


def dockyard_cases(load: Load, database: str, database_url: str | None, workers: str,
                   runs: list[tuple[bool, tuple[Case, ...]]]) -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="dy-api-bench-") as base:
        credentials: Credentials | None = None
        for metrics, cases in runs:
            with dockyard(Path(base), database_url, workers, metrics) as (url, env):
                credentials = credentials or seed(url, env)
                for case in cases:
                    measured = measure(load, url, env, case, credentials.headers(case))
                    figures.append(Figure(case.name, database, workers, metrics, *measured))
                    print_row(figures[-1])
    return figures


@contextmanager
def database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    server = start_postgres()
    try:
        server.psql("CREATE DATABASE bench")
        yield server.url("bench")
    finally:
        server.stop()


# -- the table -------------------------------------------------------------------------------

HEADER = (f"{'case':28} {'db':8} {'workers':>7} {'metrics':>7} {'req/s':>8} {'avg ms':>7} "
          f"{'p99 ms':>7} {'failed':>6} {'api cpu s':>9} {'worker cpu s':>12}")


def print_row(f: Figure) -> None:
    print(f"{f.case:28} {f.database:8} {f.workers:>7} {'on' if f.metrics else 'off':>7} "
          f"{f.rate:8.0f} {f.average_ms:7.2f} {f.p99_ms:7.2f} {f.errors:6d} {f.api_cpu:9.1f} "
          f"{f.worker_cpu:12.1f}", flush=True)


def main(options: argparse.Namespace) -> None:
    load = Load(options.seconds, options.warmup, options.connections)
    print(f"wrk -t1 -c{load.connections}, {load.seconds:g} s per case after {load.warmup:g} s "
          f"of warm-up; {os.cpu_count()} cores shared by client and server; load average "
          f"{os.getloadavg()[0]:.1f} at start; settings {EXTRA_ENV or 'default'}")
    print(HEADER)
    for workers in options.workers.split(","):
        if not options.no_bare:
            with hello_server(workers) as url:
                rate, average, p99, errors = load.run(url, Case("bare", "/hello", ""), {})
                print_row(Figure("bare FastAPI hello", "-", workers, False, rate, average,
                                 p99, errors))
        for kind in options.databases.split(","):
            with database(kind) as url:
                dockyard_cases(load, kind, url, workers, plan(options))


def python_path(source: Path | None, without: str) -> dict[str, str]:
    """PYTHONPATH (and the blocker's setting) for servers run from `source` / `without`."""
    paths = [str(source.resolve())] if source else []
    if without:
        blocker = Path(tempfile.mkdtemp(prefix="dy-bench-without-"))
        (blocker / "sitecustomize.py").write_text(BLOCKER)
        paths.insert(0, str(blocker))
    env = {"PYTHONPATH": os.pathsep.join(paths)} if paths else {}
    return env | ({"BENCH_WITHOUT": without} if without else {})


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per case, 1 s warm-up")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--workers", default="default",
                        help="comma-separated DOCKYARD_API_WORKERS values to run ('default')")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for every server started, e.g. DOCKYARD_ACCESS_LOG=true")
    parser.add_argument("--source", type=Path, help=(
        "serve the dockyard package under this directory instead (an older checkout's src/, "
        "for before/after figures)"))
    parser.add_argument("--without", default="", help=(
        "comma-separated modules the servers may not import, e.g. uvloop,httptools"))
    parser.add_argument("--cases", default="", help=(
        f"comma-separated cases to run ({','.join(CASES)}); with --metrics, instead of the "
        "default plan (every case with metrics on, the token list with them off)"))
    parser.add_argument("--metrics", default="", help=(
        "comma-separated on/off, one server start each, in this order (on,off,on,off)"))
    parser.add_argument("--no-bare", action="store_true", help="skip the bare endpoint")
    parser.add_argument("--serve-hello", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.quick:
        options.seconds, options.warmup = 3.0, 1.0
    return options


if __name__ == "__main__":
    parsed = parse(sys.argv[1:])
    EXTRA_ENV.update(pair.split("=", 1) for pair in parsed.env)
    EXTRA_ENV.update(python_path(parsed.source, parsed.without))
    if parsed.serve_hello:
        serve_hello(parsed.serve_hello, parsed.workers)
    else:
        main(parsed)
