"""Printing for people (Rich tables) or for programs (--json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
console = Console(safe_box=True, soft_wrap=True)
errors = Console(stderr=True, safe_box=True, soft_wrap=True)


def show(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """A listing as a table, or the raw objects as JSON."""
    if as_json:
        typer.echo(json.dumps(list(rows), indent=2))
        return
    table = Table(*columns, safe_box=True)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def show_one(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2))
        return
    show([{"field": k, "value": _cell(v)} for k, v in obj.items()], ["field", "value"], False)


def done(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
