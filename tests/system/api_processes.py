"""What runs behind a `dockyard up` API started with several processes."""

from __future__ import annotations

from pathlib import Path

from tests.live import Live


def serving_processes(live: Live) -> set[int]:
    """The uvicorn supervisor's children that serve (not multiprocessing's resource tracker)."""
    supervisor = int(live.pid_file.read_text())
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()}
