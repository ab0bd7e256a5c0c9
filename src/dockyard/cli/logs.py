"""`dockyard logs`: a service's container logs, the newest lines or followed live."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import console
from dockyard.cli.resources import ProjectOpt, ServiceOpt
from dockyard.cli.sse import RECONNECT_PAUSE, RECONNECTS, StreamClient, parse

TypeOpt = Annotated[str | None, typer.Option("--type", help="Only this process type (web, ...).")]
ReleaseOpt = Annotated[str | None, typer.Option("--release", help="Only this deployment id.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only lines this recent: 30s, 10m, "
                                                              "2h, 7d.")]
SearchOpt = Annotated[str | None, typer.Option("--search", help="Only lines holding this text "
                                                                "(any case).")]
TailOpt = Annotated[int, typer.Option("--tail", "-n", min=1, max=10_000,
                                      help="How many of the newest lines.")]
FollowOpt = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")]
LinesJson = Annotated[bool, typer.Option("--json", help="Print each line as a JSON object.")]


def format_line(entry: dict[str, Any]) -> str:
    """`time server type.replica release stream| line`, the release as its first 8 digits."""
    source = f"{entry['server']} {entry['process_type']}.{entry['replica']}"
    release = (entry["release"] or "-")[:8]
    marker = "!" if entry["stream"] == "stderr" else "|"
    return f"{entry['time'][:23]} {source} {release}{marker} {entry['line']}"


def logs(project: ProjectOpt, service: ServiceOpt, follow: FollowOpt = False,
         process_type: TypeOpt = None, release: ReleaseOpt = None, since: SinceOpt = None,
         search: SearchOpt = None, tail: TailOpt = 100, as_json: LinesJson = False) -> None:
    """A service's stdout and stderr from every container, kept across deploys and crashes
    (`!` marks stderr)."""
    path = f"/projects/{seg(project)}/services/{seg(service)}/logs"
    query = {"type": process_type, "release": release, "since": since, "search": search,
             "tail": tail}
    printer = _printer(as_json)
    if not follow:
        for entry in ApiClient.from_config().get(path, **query):
            printer(entry)
        return
    _follow(StreamClient.from_config(), f"{path}/follow",
            {k: v for k, v in query.items() if v is not None}, printer)


def _printer(as_json: bool) -> Callable[[dict[str, Any]], None]:
    if as_json:
        return lambda entry: print(json.dumps(entry), flush=True)
    return lambda entry: console.print(format_line(entry), markup=False, highlight=False)


def _follow(api: StreamClient, path: str, query: dict[str, Any],
            printer: Callable[[dict[str, Any]], None]) -> None:
    """Print lines until interrupted; a dropped stream resumes after the last line seen."""
    last, failures = 0, 0
    while failures <= RECONNECTS:
        headers = {"Last-Event-ID": str(last)} if last else {}
        try:
            response = api.open_stream("GET", path, params=query, headers=headers)
            try:
                for event in parse(response.iter_lines()):
                    printer(event.data)
                    last, failures = event.id or last, 0
            finally:
                response.close()
        except httpx.TransportError as exc:
            failures += 1
            if failures > RECONNECTS:
                raise api.unreachable(exc) from exc
            time.sleep(RECONNECT_PAUSE)
