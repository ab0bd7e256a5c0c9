"""Printing for people (Rich tables that fit an 80-column terminal) or for programs (--json,
every field whole)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
console = Console(safe_box=True, soft_wrap=True)
errors = Console(stderr=True, safe_box=True, soft_wrap=True)
TEXT_WIDTH = 60
_OBJECT_ID = re.compile(r"[a-f0-9]{32}")
_SPANS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def show(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool,
         now: datetime | None = None) -> None:
    """A listing as a table (times relative to `now`), or the raw objects as JSON."""
    if as_json:
        typer.echo(json.dumps(list(rows), indent=2))
        return
    console.print(table(rows, columns, now), soft_wrap=False)  # soft wrap lets it overflow


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str],
          now: datetime | None = None) -> Table:
    """Short cells (8-character ids, relative times, image tags) in columns that fold rather
    than cut, so a listing fits 80 columns and no value ends in an ellipsis."""
    cells = [[cell(c, row.get(c), now) for c in columns] for row in rows]
    grid = Table(box=box.SIMPLE_HEAD, safe_box=True, pad_edge=False, collapse_padding=True)
    for column in columns:  # short columns stay whole, the last one wraps
        grid.add_column(label(column), overflow="fold", no_wrap=column != columns[-1])
    for line in cells:
        grid.add_row(*(Text(value) for value in line))  # Text: no markup, no emoji
    return grid


def show_one(obj: dict[str, Any], as_json: bool) -> None:
    """One object as `field  value` lines, each value whole (a token or a fingerprint is
    copied from here), or as JSON."""
    if as_json:
        typer.echo(json.dumps(obj, indent=2))
        return
    width = max((len(key) for key in obj), default=0)
    for key, value in obj.items():
        done(f"{key:<{width}}  {_plain(value)}")


def done(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def label(column: str) -> str:
    """A column's header: `created_at` is `created`, `agent_fingerprint` is `fingerprint`."""
    return column.removesuffix("_at").removesuffix("_kind").removeprefix("agent_")


def cell(column: str, value: Any, now: datetime | None = None) -> str:
    """How a listing shows one value of `column` to a person."""
    if isinstance(value, str) and column.endswith("_at"):
        return ago(datetime.fromisoformat(value), now or datetime.now(UTC))
    if isinstance(value, str) and _OBJECT_ID.fullmatch(value):
        return value[:8]
    if isinstance(value, str) and column == "image_tag":
        return value.rpartition("/")[2].rpartition(":")[2]
    if isinstance(value, str) and column.endswith("fingerprint"):
        return value[:11]
    text = _plain(value)
    return text if len(text) <= TEXT_WIDTH else text[: TEXT_WIDTH - 3] + "..."


def ago(when: datetime, now: datetime) -> str:
    """`42s ago`, `5m ago`, `3h ago`, `2d ago`; a date beyond 30 days."""
    seconds = int((now - when.astimezone(UTC)).total_seconds())
    if seconds > 30 * 86400:
        return when.date().isoformat()
    size, unit = next(((s, u) for s, u in _SPANS if abs(seconds) >= s), (1, "s"))
    return f"{seconds // size}{unit} ago" if seconds >= 0 else f"in {-seconds // size}{unit}"


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
