"""`git push` figures on a real stage: `dockyard up` plus a 3-node namespace cluster (root).

A work tree of examples/hello gets its remote from `dockyard git remote` (the CLI's login as
git's credential); each push is a new commit. For each push: seconds from starting
`git push dockyard main` until the new release answers through the first node's nginx, and
until the push returns (it waits for the whole deployment, old containers drained). The
first push builds cold; the next ones reuse the build cache.

Prints the figures; asserts nothing. Run under the cluster lock:

    flock -w 600 /tmp/dockyard-cluster.lock .venv/bin/python bench/git_push_bench.py [--pushes 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.e2e.stage import EXAMPLE, Stage, staged
from tests.live import DOCKYARD, ok

PROJECT, SERVICE = "bench", "pushed"
HOST = f"{SERVICE}.{PROJECT}.localhost"


def git_env(stage: Stage, home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {**stage.env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "Bench",
            "GIT_AUTHOR_EMAIL": "bench@example.test", "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.test"}


def run(argv: list[str], tree: Path, env: dict[str, str]) -> str:
    return ok(subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True,
                             timeout=600, check=False))


def work_tree(stage: Stage, base: Path) -> tuple[Path, dict[str, str]]:
    tree = base / "hello"
    shutil.copytree(EXAMPLE, tree)
    env = git_env(stage, base / "home")
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "."],
                 ["git", "commit", "-q", "-m", "hello"],
                 [DOCKYARD, "git", "remote", "-p", PROJECT, "-s", SERVICE]):
        run(argv, tree, env)
    return tree, env


def newest(stage: Stage) -> str | None:
    history = stage.history(PROJECT, SERVICE)
    return str(history[0]["id"]) if history else None


def answers(stage: Stage, release: str) -> bool:
    try:
        answer = stage.app(stage.nodes[0], HOST)
    except Exception:  # not answering yet
        return False
    return answer.status_code == 200 and answer.json().get("release") == release


def timed_push(stage: Stage, tree: Path, env: dict[str, str], before: str | None
               ) -> tuple[float, float, str]:
    """Seconds until the new release answers, until the push returns, and its output."""
    began = time.monotonic()
    push = subprocess.Popen(["git", "push", "dockyard", "main"], cwd=tree, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    answered = None
    while push.poll() is None and answered is None:
        current = newest(stage)
        if current not in (None, before) and answers(stage, str(current)[:8]):
            answered = time.monotonic() - began
        time.sleep(0.05)
    output, _ = push.communicate(timeout=600)
    returned = time.monotonic() - began
    if push.returncode != 0:
        raise SystemExit(f"git push failed ({push.returncode}):\n{output}")
    return answered if answered is not None else returned, returned, output


def new_commit(tree: Path, env: dict[str, str], number: int) -> None:
    (tree / "PUSHED").write_text(f"{number}\n")
    run(["git", "add", "PUSHED"], tree, env)
    run(["git", "commit", "-q", "-m", f"push {number}"], tree, env)


def main(pushes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dy-git-push-bench-") as directory:
        for stage in staged(Path(directory) / "stage"):
            stage.ensure_service(PROJECT, SERVICE)
            tree, env = work_tree(stage, Path(directory))
            figures: list[tuple[float, float]] = []
            for number in range(pushes + 1):
                if number:
                    new_commit(tree, env, number)
                answered, returned, output = timed_push(stage, tree, env, newest(stage))
                kind = "cold build" if number == 0 else "warm build cache"
                print(f"push {number} ({kind}, 3 nodes): new release answering after "
                      f"{answered:.2f} s, git push returned after {returned:.2f} s "
                      f"({output.count('remote:')} remote lines)")
                figures.append((answered, returned))
            report(figures[1:], stage.history(PROJECT, SERVICE)[0])


def report(warm: list[tuple[float, float]], last: dict[str, Any]) -> None:
    if warm:
        print(f"warm pushes: answering median {statistics.median(a for a, _ in warm):.2f} s, "
              f"git push returned median {statistics.median(r for _, r in warm):.2f} s "
              f"(includes the default 5 s drain of the old release)")
    print(f"last deployment's source: {last['source']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=3, help="warm pushes after the first")
    main(parser.parse_args().pushes)
