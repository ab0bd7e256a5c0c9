"""What running the job worker inside the API costs requests: `bench/api_bench.py`'s token
list and env write cases on SQLite with request metrics on, `dockyard up` with
DOCKYARD_WORKER=process and =embedded alternately (twice each). Prints api_bench's table;
in embedded mode the worker's CPU is inside the API's column.

    flock /tmp/dockyard-bench.lock .venv/bin/python bench/worker_modes_bench.py [--seconds 12]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_bench

MODES = ("process", "embedded", "process", "embedded")


def processes(env: dict[str, str]) -> tuple[list[int], list[int]]:
    """api_bench's, without a worker process when the API runs the worker."""
    data = Path(env["DOCKYARD_DATA_DIR"])
    api = int((data / "api.pid").read_text())
    worker = data / "worker.pid"
    return [api, *api_bench.children(api)], [int(worker.read_text())] if worker.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    api_bench.processes = processes
    load = api_bench.Load(seconds=args.seconds, warmup=2, connections=16)
    cases = (api_bench.CASES["list-token"], api_bench.CASES["env-write"])
    print(api_bench.HEADER)
    for mode in MODES:
        api_bench.EXTRA_ENV.clear()
        api_bench.EXTRA_ENV["DOCKYARD_WORKER"] = mode
        print(f"DOCKYARD_WORKER={mode}", flush=True)
        api_bench.dockyard_cases(load, "sqlite", None, "default", [(True, cases)])


if __name__ == "__main__":
    main()
