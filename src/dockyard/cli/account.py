"""login, logout, whoami, API tokens, workspaces and the audit history (invitations,
members, sessions and passwords: cli.people)."""

from __future__ import annotations

import platform as host
import sys
from typing import Annotated, Any

import typer

from dockyard.cli.client import DEFAULT_URL, ApiClient, ApiError, CliError, seg
from dockyard.cli.config import CliConfig
from dockyard.cli.output import JsonFlag, done, show, show_one

tokens = typer.Typer(help="API tokens for the CLI and CI.", no_args_is_help=True)
workspaces = typer.Typer(help="Workspaces you belong to.", no_args_is_help=True)


def _token_name() -> str:
    name = "".join(c if c.isalnum() else "-" for c in host.node().lower()).strip("-")
    return f"cli-{name}"[:63].rstrip("-") or "cli"


def login_with_password(
    url: str, email: str, password: str, workspace: str | None = None
) -> CliConfig:
    """Log in, then keep a revocable API token (not the password) in the config file. The
    token is bound to `workspace` (a name or id), or to the account's default one."""
    jwt = ApiClient(url).login(email, password)
    chosen = _find_workspace(ApiClient(url, jwt), workspace)["id"] if workspace else None
    body = {"name": _token_name(), "password": password}  # so the token outlives the login
    created = ApiClient(url, jwt, chosen).post("/auth/tokens", body)
    ApiClient(url, jwt).post("/auth/logout", None)  # the token outlives the login session
    config = CliConfig(url=url, token=created["token"])
    config.save()
    return config


def _find_workspace(client: ApiClient, name: str) -> dict[str, Any]:
    rows = client.get("/workspaces")
    match = next((w for w in rows if name in (w["name"], w["id"])), None)
    if match is None:
        raise CliError(f"you are in no workspace named {name!r}; see `dockyard workspaces list`")
    return dict(match)


def read_password() -> str:
    """Prompt on a terminal; read one line from a pipe (`echo "$PW" | dockyard login`)."""
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True))
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("no password given on standard input")
    return password


def login(
    url: Annotated[str, typer.Option(help="API address.", envvar="DOCKYARD_URL")] = DEFAULT_URL,
    email: Annotated[str | None, typer.Option(help="Your account's email.")] = None,
    token: Annotated[
        str | None, typer.Option(help="Log in with an existing API token instead.")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Act in this workspace (name or id).")
    ] = None,
) -> None:
    """Log in to a Dockyard API and remember it for the next commands."""
    if token:
        config = CliConfig(url=url, token=token)
        if workspace:
            config.workspace = _find_workspace(ApiClient.from_config(config), workspace)["id"]
    else:
        email = email or typer.prompt("Email")
        config = login_with_password(url, email, read_password(), workspace)
    me = ApiClient.from_config(config).get("/auth/me")
    config.save()
    done(f"Logged in to {url} as {me['user']['email']} ({me['role']} of {me['workspace_name']}).")


def logout() -> None:
    """Revoke the saved API token (and what it minted), then forget it."""
    config = CliConfig.load()
    try:
        if config.token:
            ApiClient.from_config(config).post("/auth/logout", None)
    except ApiError as exc:
        if exc.status_code != 401:  # 401: the token was dead already
            raise
    CliConfig(url=config.url).save()
    done("Logged out; the token is revoked.")


def whoami(as_json: JsonFlag = False) -> None:
    """Show who you are logged in as."""
    me = ApiClient.from_config().get("/auth/me")
    show_one(me, as_json)


@tokens.command("list")
def tokens_list(as_json: JsonFlag = False) -> None:
    """List your API tokens."""
    rows = ApiClient.from_config().get("/auth/tokens")
    columns = ["id", "name", "prefix", "role", "created_at", "expires_at", "revoked_at"]
    show(rows, columns, as_json)


@tokens.command("create")
def tokens_create(
    name: str,
    days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
    role: Annotated[str | None, typer.Option(help="Cap the token at this role.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API token; it is printed once."""
    body = {"name": name, "expires_in_days": days, "role": role}
    created = ApiClient.from_config().post("/auth/tokens", body)
    show_one(created, as_json)


@tokens.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke an API token by id."""
    ApiClient.from_config().delete(f"/auth/tokens/{seg(token_id)}")
    done(f"Revoked token {token_id}.")


@workspaces.command("list")
def workspaces_list(as_json: JsonFlag = False) -> None:
    """List the workspaces you belong to."""
    rows = ApiClient.from_config().get("/workspaces")
    show(rows, ["id", "name", "display_name", "role"], as_json)


@workspaces.command("create")
def workspaces_create(name: str, as_json: JsonFlag = False) -> None:
    """Create a workspace you own."""
    show_one(ApiClient.from_config().post("/workspaces", {"name": name}), as_json)


@workspaces.command("use")
def workspaces_use(name: str) -> None:
    """Act in another of your workspaces from now on."""
    config = CliConfig.load()
    match = _find_workspace(ApiClient.from_config(config), name)
    config.workspace = match["id"]
    try:
        ApiClient.from_config(config).get("/auth/me")
    except ApiError as exc:
        if exc.status_code != 403:
            raise
        raise CliError(
            f"your API token is bound to another workspace; to act in {match['name']}, "
            f"run `dockyard login --workspace {match['name']}`"
        ) from None
    config.save()
    done(f"Now acting in workspace {match['name']} as {match['role']}.")


def history(
    entity_type: Annotated[str | None, typer.Option("--type", help="e.g. projects")] = None,
    entity_id: Annotated[str | None, typer.Option("--id", help="One object's id.")] = None,
    limit: Annotated[int, typer.Option(help="How many entries.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Show the audit history, newest first."""
    rows = ApiClient.from_config().get(
        "/history", entity_type=entity_type, entity_id=entity_id, limit=limit
    )
    columns = ["id", "created_at", "action", "entity_type", "entity_id", "actor_user_id"]
    show(rows, columns, as_json)
