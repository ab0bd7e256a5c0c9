"""RSS of the agent's log path alone: a container printing ~1,000 lines/s on the machine's
Docker, copied into a LogBuffer (as the agent's `/logs` does: Docker asked for new lines when
the reader has every buffered line) and read in pages of 1,000, each serialised as the API
would. Prints the lines read and this process's RSS every 30 s. The agent's RSS grew in
bench/soak.py; this isolates its log path.

    .venv/bin/python bench/agent_log_memory.py [--seconds 240]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from dockyard.agent import commands as cmd
from dockyard.agent.logbuffer import LogBuffer
from dockyard.agent.models import ContainerSpec, ImageRef, RestartPolicy
from dockyard.agent.runtime import DockerRuntime

IMAGE = ImageRef(repository="dockyard/python", tag="bookworm")
CHATTY = ("import time\ni = 0\nwhile True:\n    for _ in range(100):\n        i += 1\n"
          "        print('10.0.0.1 - - \"GET / HTTP/1.1\" 200 12 request', i, flush=True)\n"
          "    time.sleep(0.1)\n")


def rss_mb() -> float:
    pages = int(Path(f"/proc/{os.getpid()}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def chatty(runtime: DockerRuntime) -> str:
    name = f"dy-logmem-{uuid.uuid4().hex[:6]}"
    spec = ContainerSpec(name=name, service="logmem-web", image=IMAGE,
                         restart=RestartPolicy.NO, command=["python3", "-c", CHATTY],
                         labels={"dockyard.deployment": "bench"})
    await runtime.run_all(cmd.run_container(spec, runtime.container_logs))
    return name


async def read_for(buffer: LogBuffer, runtime: DockerRuntime, seconds: float) -> None:
    after, began, shown = 0, time.monotonic(), 0.0
    while (elapsed := time.monotonic() - began) < seconds:
        if after >= buffer.newest_seq:
            await buffer.sync(runtime)
        page = buffer.read(after, 1000)
        if page.entries:
            after = page.entries[-1].seq
            page.model_dump_json()
        else:
            await asyncio.sleep(0.5)
        if elapsed - shown >= 30:
            shown = elapsed
            print(f"{elapsed:6.0f} s  {after:>9} lines  RSS {rss_mb():6.1f} MB", flush=True)


async def main(seconds: float) -> None:
    runtime = DockerRuntime("unix:///var/run/docker.sock")
    name = await chatty(runtime)
    try:
        with tempfile.TemporaryDirectory() as directory:
            await read_for(LogBuffer(Path(directory), 64 * 1024**2), runtime, seconds)
    finally:
        await runtime.run(cmd.remove_container(name))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240)
    asyncio.run(main(parser.parse_args().seconds))
