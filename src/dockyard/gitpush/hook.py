"""The pre-receive hook of every service's repository: refuse what does not deploy, deploy
the pushed commit through the API (its tree as an archive upload) and print the deployment's
events as they come; git relays them as `remote: ...` lines. A non-zero exit refuses the push,
so a failed deployment fails `git push` and leaves the branch where it was."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import httpx

from dockyard.agent import process
from dockyard.cli.client import CliError
from dockyard.cli.sse import Follower, StreamClient, describe
from dockyard.gitpush.context import PushContext

CHUNK = 64 * 1024


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def deletes(self) -> bool:
        return set(self.new) == {"0"}


def parse_updates(text: str) -> list[RefUpdate]:
    """The `<old> <new> <ref>` lines git gives a pre-receive hook."""
    return [RefUpdate(*line.split(" ", 2)) for line in text.splitlines() if line.strip()]


def refusal(updates: list[RefUpdate], branch: str) -> str | None:
    """Why this push is refused, or None: only the service's branch deploys, never deleted."""
    wanted = f"refs/heads/{branch}"
    for update in updates:
        if update.ref != wanted:
            return (f"refused {update.ref}: this remote deploys branch '{branch}' only "
                    f"(push with `git push dockyard HEAD:{branch}`)")
        if update.deletes:
            return f"refused: deleting '{branch}' would not undeploy anything"
    return None


def archive_argv(commit: str) -> list[str]:
    return ["git", "archive", "--format=tar", commit]


def deploy_query(context: PushContext, commit: str) -> dict[str, str]:
    return {"project": context.project, "service": context.service, "commit": commit,
            "ref": context.branch}


def _chunks(out: IO[bytes]) -> Iterator[bytes]:
    while chunk := out.read(CHUNK):
        yield chunk


def deploy(context: PushContext, commit: str) -> str | None:
    """Deploy `commit`'s tree, printing each event; the failure's reason, or None."""
    api = StreamClient(context.api_url, context.token, context.workspace_id)
    archive = process.reading(archive_argv(commit))
    assert archive.stdout is not None
    try:
        response = api.open_stream(
            "POST", "/infra/deploy", params=deploy_query(context, commit),
            content=_chunks(archive.stdout), headers={"Content-Type": "application/x-tar"})
    finally:
        archive.stdout.close()
        archive.wait()
    follower = Follower(api)
    for event in follower.events(response):
        say(describe(event))
    result = follower.result or {}
    if result.get("status") == "succeeded":
        for url in result.get("urls") or []:
            say(f"open {url}")
        return None
    return str(result.get("error") or result.get("message") or result.get("status"))


def say(line: str) -> None:
    print(line, flush=True)


def run(context: PushContext, stdin: str) -> int:
    updates = parse_updates(stdin)
    problem = refusal(updates, context.branch)
    if problem is not None:
        say(problem)
        return 1
    for update in updates:
        say(f"deploying {update.new[:12]} of '{context.branch}' to "
            f"{context.project}/{context.service}")
        if deploy(context, update.new) is not None:
            return 1  # its `done` event, just shown, says why
    return 0


def main() -> int:
    try:
        context = PushContext.from_env(os.environ)
    except KeyError:
        say("this hook runs inside a push to Dockyard only")
        return 1
    try:
        return run(context, sys.stdin.read())
    except (CliError, httpx.HTTPError) as exc:
        say(f"deploy refused: {exc}")
        return 1
