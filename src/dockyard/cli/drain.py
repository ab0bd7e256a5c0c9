"""`dockyard servers drain NAME` and `undrain NAME`: a server's services' traffic and DNS
moved to their other servers (before it is removed or upgraded), and back."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import JsonFlag, done, show_one
from dockyard.cli.resources import _server_named

ServerArg = Annotated[str, typer.Argument(help="The server's name or id.")]


def servers_drain(server: ServerArg, as_json: JsonFlag = False) -> None:
    """Move a server's services' traffic and DNS to their other servers (deploys still
    update it, so undraining is instant)."""
    drained = _post(server, "drain")
    if as_json:
        show_one(drained, as_json)
        return
    done(f"Drained {drained['name']}: its services' traffic and DNS go to their other "
         f"servers. `dockyard servers undrain {drained['name']}` takes them back.")


def servers_undrain(server: ServerArg, as_json: JsonFlag = False) -> None:
    """Let a drained server take its services' traffic again."""
    undrained = _post(server, "undrain")
    if as_json:
        show_one(undrained, as_json)
        return
    done(f"Undrained {undrained['name']}: it takes its services' traffic again.")


def _post(server: str, action: str) -> dict[str, object]:
    client = ApiClient.from_config()
    found = _server_named(client, server)
    answer: dict[str, object] = client.post(f"/infra/servers/{seg(found['id'])}/{action}", {})
    return answer
