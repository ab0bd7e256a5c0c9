"""`dockyard servers prune NAME`: the server's agent cleans its disk now, whatever its
threshold (stopped containers, old release images, dangling images, old build cache)."""

from __future__ import annotations

import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.drain import ServerArg
from dockyard.cli.output import JsonFlag, done, show_one
from dockyard.cli.resources import _server_named
from dockyard.models.disk import DiskCleanup


def servers_prune(server: ServerArg, as_json: JsonFlag = False) -> None:
    """Have a server's agent clean its disk now: its stopped containers, all but the newest
    release images of each app, dangling images and old build cache. The agent does this by
    itself past DOCKYARD_AGENT_DISK_CLEANUP_FRACTION of its disk."""
    client = ApiClient.from_config()
    found = _server_named(client, server)
    answer = client.post(f"/infra/servers/{seg(found['id'])}/prune", {})
    if as_json:
        show_one(answer, as_json)
        return
    done(f"{found['name']}: {DiskCleanup.model_validate(answer).summary()}.")


def register(servers: typer.Typer) -> None:
    servers.command("prune")(servers_prune)
