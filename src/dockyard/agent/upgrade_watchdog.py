"""The watchdog of an agent upgrade, run from the OLD release just before the agent
re-executes itself: unless the agent answers /healthz with the new version within the
plan's seconds, `current` goes back to the previous release and the agent is restarted.

`python -m dockyard.agent.upgrade_watchdog PLAN_JSON`"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from dockyard.agent import process
from dockyard.agent.release import Layout, link_target, replace_link

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("dockyard.agent.upgrade")
POLL_SECONDS = 0.2
STOP_SECONDS = 15.0


class WatchPlan(BaseModel):
    pid: int
    url: str
    version: str
    home: Path
    seconds: float
    argv: list[str]
    pythonpath: str
    fingerprint: str
    log_file: Path


def watchdog_argv(python: str, plan: WatchPlan) -> list[str]:
    return [python, "-m", "dockyard.agent.upgrade_watchdog", plan.model_dump_json()]


def supervised() -> bool:
    """Whether systemd runs the agent (it sets INVOCATION_ID): then it restarts it."""
    return "INVOCATION_ID" in os.environ


async def answered_version(http: httpx.AsyncClient) -> str | None:
    import httpx

    try:
        answer = await http.get("/healthz")
        version = answer.json().get("version") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


async def new_version_answers(plan: WatchPlan) -> bool:
    """Whether the agent answers with the plan's version in time; without systemd, an agent
    whose process is gone will not."""
    import httpx  # here, in the watchdog's process: the agent does not hold it

    from dockyard.agent.pinning import pinned_transport

    transport = pinned_transport(plan.fingerprint) if plan.fingerprint else None
    deadline = time.monotonic() + plan.seconds
    async with httpx.AsyncClient(base_url=plan.url, transport=transport, timeout=2) as http:
        while time.monotonic() < deadline:
            if await answered_version(http) == plan.version:
                return True
            if not supervised() and not process.is_running(plan.pid):
                return False
            await asyncio.sleep(POLL_SECONDS)
    return False


def roll_back(home: Path) -> None:
    """`current` back to `previous` (and `previous` to the release that failed)."""
    layout = Layout(home)
    old, failed = link_target(layout.previous), link_target(layout.current)
    if old is None or failed is None:
        raise RuntimeError(f"no previous release to go back to in {home}")
    replace_link(layout.current, old)
    replace_link(layout.previous, failed)


def stop(pid: int) -> None:
    """SIGTERM, then SIGKILL if it is still there after STOP_SECONDS."""
    for sig, patience in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
        if not process.is_running(pid):
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + patience
        while process.is_running(pid) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)


def restart_agent(plan: WatchPlan) -> None:
    """systemd starts a stopped agent again itself; otherwise the watchdog does."""
    stop(plan.pid)
    if not supervised():
        env = {**os.environ, "PYTHONPATH": plan.pythonpath}
        child = process.spawn(plan.argv, log_file=plan.log_file, env=env)
        log.warning("agent started again as pid %d", child.pid)


def watch(plan: WatchPlan) -> int:
    if asyncio.run(new_version_answers(plan)):
        log.info("agent answers with %s: upgrade kept", plan.version)
        return 0
    log.error("agent did not answer with %s (it exited, or %g s passed): rolling back",
              plan.version, plan.seconds)
    roll_back(plan.home)
    restart_agent(plan)
    return 1


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s upgrade-watchdog %(message)s")
    raise SystemExit(watch(WatchPlan.model_validate_json(sys.argv[1])))


if __name__ == "__main__":
    main()
