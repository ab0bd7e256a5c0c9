"""`dockyard servers upgrade [NAME|--all]`: agents replaced in place."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from dockyard.cli.client import CliError
from dockyard.cli.sse import Event, StreamClient, parse

UPGRADE_TIMEOUT = httpx.Timeout(30.0, read=300.0)
UNHAPPY = frozenset({"failed", "rolled_back"})
NameArg = Annotated[str | None, typer.Argument(help="The server to upgrade.", show_default=False)]
AllOpt = Annotated[bool, typer.Option("--all", help="Upgrade every server, one at a time.")]


def register(servers: typer.Typer) -> None:
    """Add `upgrade` to the `servers` group."""
    servers.command("upgrade")(upgrade_servers)


def upgrade_servers(name: NameArg = None, all_servers: AllOpt = False) -> None:
    """Upgrade servers' agents in place to this control plane's agent, one server at a time,
    each step shown as it happens; stops at the first server that fails (exit code 1). Servers
    whose agent a package manager installed are refused: upgrade them with it."""
    if (name is None) == (not all_servers):
        raise CliError("name one server, or pass --all (not both)")
    api = StreamClient.from_config()
    try:
        response = api.open_stream("POST", "/infra/servers/upgrade", timeout=UPGRADE_TIMEOUT,
                                   json={"server": name, "all": all_servers})
    except httpx.TransportError as exc:
        raise api.unreachable(exc) from exc
    try:
        unhappy = _follow(response)
    finally:
        response.close()
    raise typer.Exit(1 if unhappy else 0)


def line(event: Event) -> str:
    """`server: step: message` (`done: message` at the end)."""
    server = event.data.get("server")
    step = event.kind.replace("_", " ")
    return f"{server + ': ' if server else ''}{step}: {event.data.get('message', '')}"


def _follow(response: httpx.Response) -> bool:
    """Print each event; whether any server failed or was rolled back."""
    unhappy = False
    for event in parse(response.iter_lines()):
        typer.echo(line(event))
        unhappy = unhappy or event.kind in UNHAPPY
        if event.kind == "done":
            return unhappy
    raise CliError("the upgrade's event stream ended early; see `dockyard servers list` for "
                   "the version each agent answers with")
