"""projects, services, env and servers: each command is one API call."""

from __future__ import annotations

import json
import sys
import textwrap
import webbrowser
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from dockyard.cli import stateful
from dockyard.cli.client import ApiClient, CliError, seg
from dockyard.cli.output import JsonFlag, ago, done, show, show_one
from dockyard.cli.sse import release_live_image

projects = typer.Typer(help="Projects group services.", no_args_is_help=True)
services = typer.Typer(help="Services are what you deploy.", no_args_is_help=True)
env = typer.Typer(help="Environment variables of a service.", no_args_is_help=True)
servers = typer.Typer(help="The server inventory.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name.")]
ServiceOpt = Annotated[str, typer.Option("--service", "-s", help="Service name.")]
DeployFlag = Annotated[bool, typer.Option(
    "--deploy/--no-deploy", help="Roll the change out as a new release of the live image.")]
PROJECT_COLUMNS = ["name", "description", "created_at"]
SERVICE_COLUMNS = ["name", "kind", "image", "updated_at"]


@projects.command("list")
def projects_list(as_json: JsonFlag = False) -> None:
    """List projects."""
    show(ApiClient.from_config().get("/projects"), PROJECT_COLUMNS, as_json)


@projects.command("create")
def projects_create(
    name: str, description: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a project."""
    body = {"name": name, "description": description}
    show_one(ApiClient.from_config().post("/projects", body), as_json)


@projects.command("show")
def projects_show(name: str, as_json: JsonFlag = False) -> None:
    """Show a project."""
    show_one(ApiClient.from_config().get(f"/projects/{seg(name)}"), as_json)


@projects.command("delete")
def projects_delete(name: str, yes: Annotated[bool, typer.Option("--yes")] = False) -> None:
    """Delete a project with all its services."""
    if not yes:
        typer.confirm(f"Delete project {name} and all its services?", abort=True)
    ApiClient.from_config().delete(f"/projects/{seg(name)}")
    done(f"Deleted project {name}.")


@services.command("list")
def services_list(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """List a project's services."""
    rows = ApiClient.from_config().get(f"/projects/{seg(project)}/services")
    show(rows, SERVICE_COLUMNS, as_json)


@services.command("create")
def services_create(
    name: str, project: ProjectOpt,
    kind: Annotated[str, typer.Option(help="app, redis or postgres.")] = "app",
    image: Annotated[str | None, typer.Option(help="Image reference to run.")] = None,
    port: Annotated[int, typer.Option(help="Port the app listens on.")] = 8000,
    server: stateful.ServerOpt = None, version: stateful.VersionOpt = None,
    memory: stateful.MemoryOpt = None, redeploy: stateful.RedeployFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a service: an app, or a Postgres or Redis that runs now and is injected into the
    project's apps (--server, --version, --memory, --redeploy are for those)."""
    if kind in stateful.STATEFUL_KINDS:
        stateful.create_stateful(name, project, kind, server=server, version=version,
                                 image=image, memory=memory, redeploy=redeploy,
                                 as_json=as_json)
        return
    body = {"name": name, "kind": kind, "image": image, "config": {"port": port}}
    show_one(ApiClient.from_config().post(f"/projects/{seg(project)}/services", body), as_json)


@services.command("info")
def services_info(
    name: str, project: ProjectOpt, as_json: JsonFlag = False,
    show_secret: Annotated[bool, typer.Option(
        "--show-secret", help="Show the password in the URL (admins).")] = False,
) -> None:
    """A stateful service: state, server, version, volume, URL (password masked)."""
    stateful.show_info(name, project, show_secret, as_json)


def _stateful_action(action: str) -> Any:
    def command(name: str, project: ProjectOpt, as_json: JsonFlag = False) -> None:
        stateful.act(name, project, action, as_json)

    command.__doc__ = f"{action.capitalize()} a stateful service's container (its data stays)."
    return command


for _action in ("start", "stop", "restart"):
    services.command(_action)(_stateful_action(_action))


@services.command("rekey")
def services_rekey(name: str, project: ProjectOpt, redeploy: stateful.RedeployFlag = False,
                   as_json: JsonFlag = False) -> None:
    """Give a stateful service a new generated password (it restarts; its data stays)."""
    stateful.rekey(name, project, redeploy, as_json)


@services.command("show")
def services_show(name: str, project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Show a service."""
    show_one(ApiClient.from_config().get(f"/projects/{seg(project)}/services/{seg(name)}"), as_json)


def open_service(
    project: ProjectOpt, service: ServiceOpt,
    print_only: Annotated[bool, typer.Option("--print", help="Only print the address.")] = False,
) -> None:
    """Open the service's address in a browser (and print it)."""
    found = ApiClient.from_config().get(f"/projects/{seg(project)}/services/{seg(service)}")
    if not found.get("urls"):
        raise CliError(f"{project}/{service} has no address yet; deploy it first")
    url = found["urls"][0]
    done(url)
    if not print_only and not webbrowser.open(url):
        done("(no browser could be started here; open the address above)")


@services.command("update")
def services_update(
    name: str, project: ProjectOpt,
    image: Annotated[str | None, typer.Option(help="New image reference.")] = None,
    rename: Annotated[str | None, typer.Option(help="New name.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a service's image or name."""
    body = {k: v for k, v in {"image": image, "name": rename}.items() if v is not None}
    path = f"/projects/{seg(project)}/services/{seg(name)}"
    show_one(ApiClient.from_config().patch(path, body), as_json)


@services.command("delete")
def services_delete(
    name: str, project: ProjectOpt,
    confirm: Annotated[str | None, typer.Option(
        "--confirm", help="A stateful service's name again (else you are asked).")] = None,
    redeploy: stateful.RedeployFlag = False,
) -> None:
    """Delete a service; a stateful one after a final backup, confirmed by its name."""
    if stateful.is_stateful(project, name):
        stateful.delete_stateful(name, project, confirm, redeploy)
        return
    ApiClient.from_config().delete(f"/projects/{seg(project)}/services/{seg(name)}")
    done(f"Deleted service {project}/{name}.")


def _env_path(project: str, service: str) -> str:
    return f"/projects/{seg(project)}/services/{seg(service)}/env"


def parse_assignments(pairs: list[str]) -> list[dict[str, str]]:
    """KEY=VALUE words; a bare KEY- reads its value from standard input."""
    items = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep and key.endswith("-"):
            key, value = key[:-1], sys.stdin.read()
        elif not sep:
            raise CliError(f"{pair!r} is not KEY=VALUE (use KEY- to read the value from stdin)")
        items.append({"key": key, "value": value})
    return items


@env.command("list")
def env_list(
    project: ProjectOpt, service: ServiceOpt, as_json: JsonFlag = False,
    show_secret: Annotated[bool, typer.Option(
        help="Show the passwords in injected URLs (admins).")] = False,
) -> None:
    """List variables, and the URLs of the project's stateful services injected at every
    deploy (source `injected`); secret values and passwords are masked."""
    query = {"show_secret": "true"} if show_secret else {}
    rows = ApiClient.from_config().get(_env_path(project, service), **query)
    show(rows if as_json else [_env_row(r) for r in rows], ENV_COLUMNS, as_json)


ENV_COLUMNS = ["key", "secret", "from", "updated_at", "value"]


def _env_row(row: dict[str, Any]) -> dict[str, Any]:
    """`from`: the stateful service that injects the variable, or `you` (`you, not NAME`
    when the app's own variable replaces what NAME would inject)."""
    by = row.get("stateful_service")
    if row.get("source") == "injected":
        return {**row, "from": by}
    return {**row, "from": f"you, not {by}" if by else "you"}


@env.command("set")
def env_set(
    assignments: Annotated[list[str], typer.Argument(help="KEY=VALUE ...")],
    project: ProjectOpt, service: ServiceOpt,
    secret: Annotated[bool, typer.Option(help="Store as secret: masked everywhere.")] = False,
    deploy: DeployFlag = True,
) -> None:
    """Set variables, all at once or none, and roll them out as a new release."""
    assigned = parse_assignments(assignments)
    items = [{**item, "secret": secret} for item in assigned]
    ApiClient.from_config().patch(_env_path(project, service), {"set": items})
    done(f"Set {', '.join(i['key'] for i in assigned)} on {project}/{service}.")
    if deploy:
        release_live_image(project, service)


@env.command("unset")
def env_unset(
    keys: Annotated[list[str], typer.Argument(help="KEY ...")],
    project: ProjectOpt, service: ServiceOpt, deploy: DeployFlag = True,
) -> None:
    """Unset variables, all at once or none, and roll that out as a new release."""
    ApiClient.from_config().patch(_env_path(project, service), {"unset": keys})
    done(f"Unset {', '.join(keys)} on {project}/{service}.")
    if deploy:
        release_live_image(project, service)


# Whether an agent is current is told under the table, with the expected version.
SERVER_COLUMNS = ["id", "name", "ip", "status", "agent_version", "agent_fingerprint"]


@servers.command("list")
def servers_list(as_json: JsonFlag = False) -> None:
    """List the server inventory: status, agent version and free disk (of the fullest file
    system its agent writes to); under the table, why a server is degraded or unreachable,
    how it differs from what it should run, and which agents are not at this control plane's
    version (`dockyard servers upgrade`)."""
    listed = ApiClient.from_config().get("/infra/servers")
    if as_json:
        show(listed, SERVER_COLUMNS, as_json)
        return
    show([{**x, "disk_free": disk_free(x.get("disk", []))} for x in listed],
         [*SERVER_COLUMNS, "disk_free"], False)
    for line in status_reasons(listed):
        done(line)


def disk_free(disks: list[dict[str, Any]]) -> str:
    """`12% (1.0 GiB)`: the free share and space of the fullest file system; `-` unreported."""
    if not disks:
        return "-"
    fullest = min(disks, key=lambda x: x["free_bytes"] / (x["total_bytes"] or 1))
    return (f"{fullest['free_bytes'] / (fullest['total_bytes'] or 1):.0%} "
            f"({_size(fullest['free_bytes'])})")


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def status_reasons(servers: list[dict[str, Any]], width: int = 80) -> list[str]:
    """`name: reason` for each server that has one, whether it is drained, its copies of
    services marked down (with why), and how many ways it differs from what it should run
    (its drift), wrapped to `width` columns."""
    said = [f"{s['name']} {s['status']}: {s['status_reason']}"
            for s in servers if s.get("status_reason")]
    said += [f"{s['name']} drained: its services' traffic goes to their other servers"
             for s in servers if s.get("drained")]
    said += [f"{s['name']}: copy of {down['service']} down: {down['reason']}"
             for s in servers for down in s.get("down_copies", [])]
    said += [f"{s['name']} differs from what it should run: {_drift_summary(s['drift'])} "
             f"(`dockyard servers events {s['name']}`)" for s in servers if s.get("drift")]
    said += [f"{s['name']} runs agent {s['agent_version']}; this control plane's is "
             f"{s['agent_expected_version']} (`dockyard servers upgrade {s['name']}`)"
             for s in servers if s.get("agent_version") and s.get("agent_current") is False]
    return [textwrap.fill(line, width, subsequent_indent="  ") for line in said]


def _drift_summary(drift: list[dict[str, Any]]) -> str:
    more = f" and {len(drift) - 1} more" if len(drift) > 1 else ""
    return f"{drift[0]['message']}{more}"


def add_server(client: ApiClient, name: str, ip: str, port: int, provider: str, *,
               fingerprint: str | None = None, insecure_http: bool = False) -> Any:
    """Register a server, then ask its agent at once so the answer shows its status (and the
    pinned certificate fingerprint, to compare with what the agent printed)."""
    body = {"name": name, "ip": ip, "agent_port": port, "provider": provider,
            "agent_fingerprint": fingerprint, "insecure_http": insecure_http}
    added = client.post("/infra/servers", body)
    return client.post(f"/infra/servers/{seg(added['id'])}/check", {})


@servers.command("add")
def servers_add(
    name: str,
    ip: Annotated[str, typer.Option(help="Address the control plane reaches the agent at.")],
    port: Annotated[int, typer.Option(help="The agent's port.")] = 8421,
    provider: Annotated[str, typer.Option(help="local, cluster or manual.")] = "manual",
    fingerprint: Annotated[str | None, typer.Option(
        help="The certificate fingerprint `dockyard-agent fingerprint` prints on the server; "
             "without it, the one the agent presents now is pinned.")] = None,
    insecure_http: Annotated[bool, typer.Option(
        help="Plain HTTP to an agent run with DOCKYARD_AGENT_TLS=false (private networks "
             "only).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a server whose agent holds this workspace's key (see `servers agent-key`)."""
    added = add_server(ApiClient.from_config(), name, ip, port, provider,
                       fingerprint=fingerprint, insecure_http=insecure_http)
    show_one(added, as_json)


@servers.command("check")
def servers_check(server_id: str, as_json: JsonFlag = False) -> None:
    """Ask a server's agent now and show what it says."""
    path = f"/infra/servers/{seg(server_id)}/check"
    show_one(ApiClient.from_config().post(path, {}), as_json)


@servers.command("pin")
def servers_pin(
    server_id: str,
    fingerprint: Annotated[str | None, typer.Option(
        help="The fingerprint `dockyard-agent fingerprint` prints on the server; without it, "
             "the certificate the agent presents now is pinned.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Pin a server's agent certificate again (after it was replaced on purpose)."""
    params = {"fingerprint": fingerprint} if fingerprint else {}
    pinned = ApiClient.from_config().request("POST", f"/infra/servers/{seg(server_id)}/pin",
                                             params=params)
    show_one(pinned, as_json)


@servers.command("remove")
def servers_remove(server_id: str) -> None:
    """Forget a server (the machine itself is left alone)."""
    ApiClient.from_config().delete(f"/infra/servers/{seg(server_id)}")
    done(f"Removed server {server_id} from the inventory.")


@servers.command("agent-key")
def servers_agent_key() -> None:
    """Print the key to put in a new server's agent key file (mode 0600)."""
    typer.echo(ApiClient.from_config().get("/infra/agent-key")["key"])


@servers.command("show")
def servers_show(server_id: str, as_json: JsonFlag = False) -> None:
    """Show one server."""
    show_one(ApiClient.from_config().get(f"/infra/servers/{seg(server_id)}"), as_json)


@servers.command("events")
def servers_events(
    server: Annotated[str, typer.Argument(help="The server's name or id.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many events.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """What the reconciler corrected on a server (oldest first), and what still differs
    from what it should run (its drift)."""
    client = ApiClient.from_config()
    found = _server_named(client, server)
    events = client.get(f"/infra/servers/{seg(found['id'])}/events", limit=limit)
    if as_json:
        typer.echo(json.dumps({"events": events, "drift": found["drift"]}, indent=2))
        return
    for line in server_event_lines(events, found["drift"], datetime.now(UTC)):
        done(line)


def _server_named(client: ApiClient, server: str) -> Any:
    for listed in client.get("/infra/servers"):
        if server in (listed["name"], listed["id"]):
            return listed
    raise CliError(f"no server named {server!r}; see `dockyard servers list`")


def server_event_lines(events: list[dict[str, Any]], drift: list[dict[str, Any]],
                       now: datetime, width: int = 80) -> list[str]:
    """Each event and each drift item on lines of at most `width` columns."""
    def wrapped(items: list[dict[str, Any]], time: str) -> list[str]:
        stamps = [f"{ago(datetime.fromisoformat(item[time]), now):>8}  " for item in items]
        return [line for stamp, item in zip(stamps, items, strict=True)
                for line in textwrap.wrap(stamp + item["message"], width,
                                          subsequent_indent=" " * len(stamp))]

    lines = wrapped(events, "time") or ["No events yet."]
    if not drift:
        return [*lines, "No drift: the node runs what it should."]
    return [*lines, "Drift (since):", *wrapped(drift, "since")]


credentials = typer.Typer(help="Cloud provider tokens (stored encrypted).", no_args_is_help=True)


@credentials.command("list")
def credentials_list(as_json: JsonFlag = False) -> None:
    """List provider credentials; tokens are masked."""
    rows = ApiClient.from_config().get("/infra/credentials")
    show(rows, ["name", "provider", "token", "updated_at"], as_json)


@credentials.command("set")
def credentials_set(
    name: str,
    provider: Annotated[str, typer.Option(help="digitalocean or cloudflare.")],
) -> None:
    """Store a provider token, read from standard input (or a hidden prompt)."""
    token = sys.stdin.readline().strip() if not sys.stdin.isatty() else typer.prompt(
        "Token", hide_input=True
    )
    body = {"provider": provider, "token": token}
    ApiClient.from_config().request("PUT", f"/infra/credentials/{seg(name)}", json=body)
    done(f"Stored credential {name} ({provider}).")


@credentials.command("unset")
def credentials_unset(name: str) -> None:
    """Forget a provider token."""
    ApiClient.from_config().delete(f"/infra/credentials/{seg(name)}")
    done(f"Removed credential {name}.")
