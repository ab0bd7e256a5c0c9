"""ps, restart and run: a service's processes, a rolling restart, a one-off command."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer

from dockyard.cli.client import ApiClient, CliError, seg
from dockyard.cli.output import JsonFlag, ago, errors, show, show_one
from dockyard.cli.resources import ProjectOpt, ServiceOpt
from dockyard.cli.sse import StreamClient, parse, watch

PS_COLUMNS = ["process", "release", "state", "up", "restarts", "memory", "exit", "server"]
RUN_TIMEOUT = httpx.Timeout(30.0, read=None)  # a command may stay silent for long
CommandArg = Annotated[list[str], typer.Argument(
    metavar="-- COMMAND...", help="The program and its arguments, after `--` (no shell).")]
ServerOpt = Annotated[str | None, typer.Option(
    "--server", help="Run on this server (name or id). Default: the first the service runs on.")]
TimeoutOpt = Annotated[int | None, typer.Option(
    "--timeout", min=1, help="Kill the command after this many seconds (default: the API's "
    "DOCKYARD_RUN_TIMEOUT_SECONDS).")]
TypeArg = Annotated[str | None, typer.Argument(
    metavar="[TYPE]", help="Restart only this process type (web, worker, ...).")]
ScaleArg = Annotated[list[str], typer.Argument(metavar="TYPE=N...",
                                               help="Replicas per process type, e.g. web=3.")]
EventsJson = Annotated[bool, typer.Option("--json", help="Print each event as one JSON line.")]


def _service_path(project: str, service: str) -> str:
    return f"/projects/{seg(project)}/services/{seg(service)}"


def ps(project: ProjectOpt, service: ServiceOpt, as_json: JsonFlag = False) -> None:
    """Every process of a service on every server: its state, uptime, restarts, memory and
    how the last one exited."""
    listing = ApiClient.from_config().get(f"{_service_path(project, service)}/processes")
    if as_json:
        show_one(listing, as_json=True)
        return
    show([process_row(p) for p in listing["processes"]], PS_COLUMNS, as_json=False)
    for down in listing["unreachable"]:
        errors.print(f"server {down['server']} did not answer: {down['error']}",
                     markup=False, highlight=False)
    for line in drift_lines(listing.get("drift", [])):
        errors.print(line, markup=False, highlight=False)


def drift_lines(drift: list[dict[str, Any]], width: int = 80) -> list[str]:
    """What differs from what should run, per server, wrapped to `width` columns."""
    return [textwrap.fill(f"server {d['server']} differs: {d['message']}", width,
                          subsequent_indent="  ") for d in drift]


def process_row(process: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A process as `ps` shows it to a person: `web.1`, uptime, memory in MiB, the last
    exit code (and OOM) while it is not running."""
    running = process["state"] == "running"
    return {"server": process["server"], "process": f"{process['type']}.{process['replica']}",
            "release": process["release"], "state": process["state"],
            "up": _uptime(process["started_at"], now) if running else None,
            "restarts": process["restarts"], "memory": _mib(process["memory_bytes"]),
            "exit": _last_exit(process)}


def _uptime(started_at: str | None, now: datetime | None) -> str | None:
    if started_at is None:
        return None
    return ago(datetime.fromisoformat(started_at), now or datetime.now(UTC)).removesuffix(" ago")


def _mib(size: int | None) -> str | None:
    return None if size is None else f"{size / (1 << 20):.0f}M"


def _last_exit(process: dict[str, Any]) -> str | None:
    code = process["exit_code"]
    if process["oom_killed"]:
        return f"{code} OOM"
    return None if code is None else str(code)


def restart(project: ProjectOpt, service: ServiceOpt, kind: TypeArg = None,
            as_json: EventsJson = False) -> None:
    """Restart a service without downtime: a new rolling rollout of its live release (with
    its current variables), of every process type or of TYPE alone."""
    api = StreamClient.from_config()
    path = f"{_service_path(project, service)}/restart"
    query = {"type": kind} if kind else None
    watch(api, lambda: api.open_stream("POST", path, params=query), as_json)


def scale(project: ProjectOpt, service: ServiceOpt, counts: ScaleArg,
          as_json: EventsJson = False) -> None:
    """Set how many containers of each process type run on every server of the service
    (`web=3 worker=2`), as a rolling rollout of the live release."""
    api = StreamClient.from_config()
    body = {"scale": parse_scale(counts)}
    path = f"{_service_path(project, service)}/scale"
    watch(api, lambda: api.open_stream("POST", path, json=body), as_json)


def parse_scale(counts: list[str]) -> dict[str, int]:
    """`web=3` pairs; the API checks the types and the numbers."""
    scale: dict[str, int] = {}
    for pair in counts:
        kind, equals, number = pair.partition("=")
        if not equals or not number.strip().isdigit():
            raise CliError(f"{pair!r} is not TYPE=N (for example web=3)")
        scale[kind.strip()] = int(number)
    return scale


def run_command(project: ProjectOpt, service: ServiceOpt, command: CommandArg,
                server: ServerOpt = None, timeout: TimeoutOpt = None) -> None:
    """Run a one-off command in a new container of the live release, with the service's
    environment; its output streams here and this exits with its exit code."""
    api = StreamClient.from_config()
    body = {"command": command, "server": server, "timeout_seconds": timeout}
    path = f"{_service_path(project, service)}/run"
    try:
        response = api.open_stream("POST", path, timeout=RUN_TIMEOUT, json=body)
    except httpx.TransportError as exc:
        raise api.unreachable(exc) from exc
    try:
        code = _follow_run(response)
    finally:
        response.close()
    raise typer.Exit(code)


def _follow_run(response: httpx.Response) -> int:
    for event in parse(response.iter_lines()):
        if event.kind == "output":
            sys.stdout.write(event.data["text"])
            sys.stdout.flush()
        elif event.kind == "exit":
            if event.data.get("timed_out"):
                errors.print("the command was killed: it reached its time limit",
                             markup=False, highlight=False)
            return int(event.data["exit_code"])
        elif event.kind == "error":
            raise CliError(str(event.data.get("message")))
    raise CliError("the command's stream ended before the command did; its container is "
                   "removed on the server")
