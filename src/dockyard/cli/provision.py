"""`dockyard servers provision|sizes|regions|droplets|destroy` and `dockyard snapshots ...`:
servers and snapshots on DigitalOcean, progress shown live from the API's event stream."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer

from dockyard.cli.client import ApiClient, CliError, seg
from dockyard.cli.output import JsonFlag, done, show
from dockyard.cli.sse import StreamClient, parse

CredentialOpt = Annotated[str, typer.Option(
    "--credential", help="The DigitalOcean credential (`dockyard credentials set`).")]
RegionOpt = Annotated[str, typer.Option(help="Region slug (`dockyard servers regions`).")]
SizeOpt = Annotated[str, typer.Option(help="Size slug (`dockyard servers sizes`).")]
snapshots = typer.Typer(help="Dockyard snapshots on DigitalOcean: the agent pre-installed.",
                        no_args_is_help=True)


def _streamed(path: str, body: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """Show each event of a provisioning or snapshot stream; the events' data."""
    api = StreamClient.from_config()
    seen: list[dict[str, Any]] = []
    try:
        response = api.open_stream("POST", path, json=body,
                                   timeout=httpx.Timeout(30.0, read=None))
    except httpx.TransportError as exc:
        raise api.unreachable(exc) from exc
    try:
        for event in parse(response.iter_lines()):
            seen.append(event.data)
            _show(event.data, as_json)
    finally:
        response.close()
    return _concluded(seen)


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data))
        return
    server = f"{data['server']}: " if data.get("server") else ""
    done(f"{server}{data.get('message', '')}")


def _concluded(seen: list[dict[str, Any]]) -> dict[str, Any]:
    if not seen or seen[-1].get("kind") != "done":
        raise CliError("the event stream ended before the work did; see `dockyard servers "
                       "list` and `dockyard servers droplets`")
    if any(data.get("kind") == "failed" for data in seen):
        raise CliError("something failed (see above); failed servers stay listed until "
                       "`dockyard servers remove NAME`")
    return seen[-1]


def provision(
    region: RegionOpt, size: SizeOpt,
    count: Annotated[int, typer.Option(min=1, max=10, help="How many servers.")] = 1,
    snapshot: Annotated[str | None, typer.Option(
        help="A Dockyard snapshot's id (`dockyard snapshots list`); none: a stock image")
    ] = None,
    vpc: Annotated[str | None, typer.Option(help="A VPC's id (UUID).")] = None,
    ssh_key: Annotated[list[str] | None, typer.Option(
        "--ssh-key", help="An SSH key's id or MD5 fingerprint; repeat for more.")] = None,
    name: Annotated[str, typer.Option(help="Names are this, '-' and 6 hex digits.")] = "node",
    credential: CredentialOpt = "digitalocean", as_json: JsonFlag = False,
) -> None:
    """Create servers on DigitalOcean; each joins the inventory once its agent answers."""
    body = {"region": region, "size": size, "count": count, "snapshot": snapshot, "vpc": vpc,
            "ssh_keys": ssh_key or [], "name": name, "credential": credential}
    result = _streamed("/infra/servers/provision", body, as_json)
    if not as_json:
        done(result.get("message", ""))


def sizes(region: Annotated[str | None, typer.Option(help="Only sizes offered here.")] = None,
          credential: CredentialOpt = "digitalocean", as_json: JsonFlag = False) -> None:
    """Droplet sizes and their monthly price (US dollars)."""
    found = ApiClient.from_config().get("/infra/sizes", credential=credential)
    rows = [row for row in found if region is None or region in row["regions"]]
    show(rows, ["slug", "vcpus", "memory", "disk", "price_monthly"], as_json)


def regions(credential: CredentialOpt = "digitalocean", as_json: JsonFlag = False) -> None:
    """DigitalOcean's regions."""
    found = ApiClient.from_config().get("/infra/regions", credential=credential)
    show(found, ["slug", "name", "available"], as_json)


def droplets(credential: CredentialOpt = "digitalocean", as_json: JsonFlag = False) -> None:
    """The account's managed droplets (tagged deployed-via-api) and their servers."""
    found = ApiClient.from_config().get("/infra/droplets", credential=credential)
    show(found, ["id", "name", "status", "ip", "region", "server"], as_json)


def _server_id(client: ApiClient, name: str) -> str:
    for server in client.get("/infra/servers"):
        if name in (server["name"], server["id"]):
            return str(server["id"])
    raise CliError(f"no server named {name!r}: see `dockyard servers list`")


def destroy(
    name: Annotated[str | None, typer.Argument(help="The server's name or id.")] = None,
    droplet: Annotated[int | None, typer.Option(
        help="A droplet that is no server, by its id (`dockyard servers droplets`).")] = None,
    force: Annotated[bool, typer.Option(
        help="Destroy a droplet even without the deployed-via-api tag.")] = False,
    credential: CredentialOpt = "digitalocean",
) -> None:
    """Drain a provisioned server, destroy its droplet and forget it; or destroy --droplet."""
    client = ApiClient.from_config()
    if (name is None) == (droplet is None):
        raise CliError("name a server, or give --droplet ID (not both)")
    if droplet is not None:
        client.request("DELETE", f"/infra/droplets/{droplet}",
                       params={"credential": credential, "force": str(force).lower()})
        done(f"Destroyed droplet {droplet}.")
        return
    assert name is not None
    server_id = _server_id(client, name)
    client.request("DELETE", f"/infra/servers/{seg(server_id)}/droplet",
                   params={"credential": credential})
    done(f"Drained {name}, destroyed its droplet and removed it from the inventory.")


@snapshots.command("create")
def snapshots_create(
    region: RegionOpt, size: SizeOpt = "s-1vcpu-1gb",
    image: Annotated[str | None, typer.Option(help="The stock image to build on.")] = None,
    credential: CredentialOpt = "digitalocean", as_json: JsonFlag = False,
) -> None:
    """Build a snapshot with the agent and its dependencies installed (several minutes)."""
    body = {"region": region, "size": size, "image": image, "credential": credential}
    _streamed("/infra/snapshots", body, as_json)


@snapshots.command("list")
def snapshots_list(as_json: JsonFlag = False) -> None:
    """This workspace's snapshots and the agent version each carries."""
    found = ApiClient.from_config().get("/infra/snapshots")
    show(found, ["provider_id", "name", "regions", "agent_version", "current", "created_at"],
         as_json)


@snapshots.command("delete")
def snapshots_delete(snapshot: Annotated[str, typer.Argument(help="The snapshot's id.")],
                     credential: CredentialOpt = "digitalocean") -> None:
    """Delete a snapshot at DigitalOcean and here."""
    ApiClient.from_config().request("DELETE", f"/infra/snapshots/{seg(snapshot)}",
                                    params={"credential": credential})
    done(f"Deleted snapshot {snapshot}.")


COMMANDS: dict[str, Callable[..., None]] = {
    "provision": provision, "sizes": sizes, "regions": regions, "droplets": droplets,
    "destroy": destroy}


def register(servers: typer.Typer, app: typer.Typer) -> None:
    """Add these commands to the `servers` group and the `snapshots` group to the app."""
    for command_name, command in COMMANDS.items():
        servers.command(command_name)(command)
    app.add_typer(snapshots, name="snapshots")
