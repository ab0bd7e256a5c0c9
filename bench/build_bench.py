"""Cold and warm builds of a Python app with dependencies (examples/flask-gunicorn), the way a
code deploy builds it: generated Dockerfile on the offline base, this machine's package
indexes and CA, the local Docker Engine. Prints the figures; asserts nothing.

"Cold": a dependency set this Engine has not built before (a fresh marker line in
requirements.txt), so pip downloads and installs everything; the offline base is already
imported. "Warm": only app.py changed, so the dependency layer comes from the cache.
"Answers": from starting the container until it answers /healthz.

    .venv/bin/python bench/build_bench.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deploy.test_dockerfile import free_port  # noqa: E402
from tests.deploy.test_stack_builds import build  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask-gunicorn"


def timed_build(client: docker.APIClient, app: Path, work: Path, tag: str) -> tuple[float, bool]:
    started = time.monotonic()
    output = "".join(build(client, app, work, tag))
    install = next(step for step in output.split("Step ") if "pip install -r" in step)
    return time.monotonic() - started, "Using cache" in install


def answers_after(client: docker.APIClient, tag: str) -> float:
    port = free_port()
    started = time.monotonic()
    container = client.create_container(tag, ports=[8000], host_config=client.create_host_config(
        port_bindings={8000: ("127.0.0.1", port)}))
    try:
        client.start(container)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                time.sleep(0.05)
    finally:
        client.remove_container(container, force=True)


def one_round(client: docker.APIClient, work: Path) -> dict[str, float]:
    app = work / "app"
    shutil.rmtree(app, ignore_errors=True)
    shutil.copytree(EXAMPLE, app)
    requirements = app / "requirements.txt"
    requirements.write_text(requirements.read_text() + f"# bench {uuid.uuid4().hex}\n")
    tag = f"dockyard-bench/build:{uuid.uuid4().hex[:8]}"
    try:
        cold, cached = timed_build(client, app, work, tag)
        assert not cached, "the cold build reused a dependency layer"
        (app / "app.py").write_text((app / "app.py").read_text().replace("Hello", "Hi"))
        warm, cached = timed_build(client, app, work, tag)
        assert cached, "the warm build did not reuse the dependency layer"
        return {"cold": cold, "warm": warm, "answers": answers_after(client, tag)}
    finally:
        client.remove_image(tag, force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    client = docker.APIClient(base_url="unix:///var/run/docker.sock", timeout=900)
    with tempfile.TemporaryDirectory() as directory:
        results = [one_round(client, Path(directory)) for _ in range(rounds)]
    for name in ("cold", "warm", "answers"):
        values = [result[name] for result in results]
        print(f"{name:8} median {statistics.median(values):6.2f} s   "
              f"runs {', '.join(f'{value:.2f}' for value in values)}")


if __name__ == "__main__":
    main()
