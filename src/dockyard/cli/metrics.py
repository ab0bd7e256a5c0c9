"""`dockyard metrics` (a service's requests over time, deploys marked) and
`dockyard servers health NAME` (a server's latest host figures)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import JsonFlag, done, show_one
from dockyard.cli.resources import ProjectOpt, ServiceOpt, servers

SinceOpt = Annotated[str, typer.Option("--since", help="How far back: 30m, 6h, 7d (at most "
                                                       "30d).")]
ByOpt = Annotated[str | None, typer.Option("--by", help="One series per server or release.")]
HEADER = ("time", "req", "rate/s", "2xx", "3xx", "4xx", "5xx", "p50ms", "p95ms", "p99ms",
          "bytes", "live")
WIDTHS = (16, 7, 8, 6, 5, 5, 5, 7, 7, 7, 9, 8)


def metrics(project: ProjectOpt, service: ServiceOpt, since: SinceOpt = "1h",
            by: ByOpt = None, as_json: JsonFlag = False) -> None:
    """A service's requests: rate, status classes, latency percentiles and bytes per step,
    with a line where a deploy (or rollback) went live."""
    path = f"/projects/{seg(project)}/services/{seg(service)}/metrics"
    found = ApiClient.from_config().get(path, since=since, by=by)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for line in render(found):
        done(line)


def render(found: dict[str, Any]) -> list[str]:
    """The table's lines, a deploy marker before the first step that began after it."""
    markers = sorted(found["deploys"], key=_at)
    grouped = found["by"] is not None
    lines = [_row(("group",) * grouped + HEADER, grouped)]
    for point in found["points"]:
        while markers and _at(markers[0]) <= _at(point):
            lines.append(_marker(markers.pop(0)))
        lines.append(_row(_cells(point, grouped), grouped))
    lines.extend(_marker(marker) for marker in markers)
    return lines


def _at(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["time"])


def _cells(point: dict[str, Any], grouped: bool) -> tuple[str, ...]:
    cells = (point["time"][:16].replace("T", " "), str(point["requests"]),
             f"{point['rate']:.2f}", *(str(point[f"status_{n}xx"]) for n in (2, 3, 4, 5)),
             *(_ms(point[f"p{n}_ms"]) for n in (50, 95, 99)), _size(point["bytes_sent"]),
             point["live_release"] or "-")
    return (point["group"] or "-",) * grouped + cells


def _row(cells: Sequence[str], grouped: bool) -> str:
    widths = ((12,) if grouped else ()) + WIDTHS
    return " ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _size(count: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def _marker(marker: dict[str, Any]) -> str:
    when = marker["time"][:19].replace("T", " ")
    return f"-- {marker['kind']} {marker['release']} live at {when} --"


def health(name: Annotated[str, typer.Argument(help="The server's name.")],
           as_json: JsonFlag = False) -> None:
    """A server's latest CPU, memory, disk and container figures, and how old they are."""
    show_one(ApiClient.from_config().get(f"/infra/servers/{seg(name)}/health"), as_json)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("metrics", rich_help_panel="Deploy")(metrics)
    servers.command("health")(health)
