"""Invitations, members, login sessions, passwords and account deletion."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from dockyard.cli.account import login_with_password, read_password
from dockyard.cli.client import DEFAULT_URL, ApiClient, CliError, seg
from dockyard.cli.config import CliConfig
from dockyard.cli.output import JsonFlag, done, show, show_one

invitations = typer.Typer(help="Pending invitations to this workspace.", no_args_is_help=True)
members = typer.Typer(help="Members of this workspace.", no_args_is_help=True)
sessions = typer.Typer(help="Your login sessions.", no_args_is_help=True)
account = typer.Typer(help="Your account.", no_args_is_help=True)

def _workspace_path(client: ApiClient, rest: str) -> str:
    me = client.get("/auth/me")
    return f"/workspaces/{seg(me['workspace_id'])}/{rest}"


def read_new_password() -> str:
    """Prompt twice on a terminal; from a pipe, read two lines that must match."""
    if sys.stdin.isatty():
        return str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))
    first, second = read_password(), read_password()
    if first != second:
        raise CliError("the two passwords differ")
    return first


def invite(
    email: str,
    role: Annotated[str, typer.Option(help="viewer, member, admin or owner.")] = "member",
    as_json: JsonFlag = False,
) -> None:
    """Invite someone to this workspace; prints the invitation's secret and link once."""
    client = ApiClient.from_config()
    created = client.post(_workspace_path(client, "invitations"), {"email": email, "role": role})
    if as_json:
        show_one(created, True)
        return
    done(f"Invited {created['email']} as {created['role']} (expires {created['expires_at']}).")
    typer.echo(f"Token (shown once): {created['token']}\nLink: {created['link']}\n"
               f"They run: dockyard accept {created['token']} --url {client.url}")


@invitations.command("list")
def invitations_list(as_json: JsonFlag = False) -> None:
    """List pending invitations (never their secrets)."""
    client = ApiClient.from_config()
    rows = client.get(_workspace_path(client, "invitations"))
    show(rows, ["id", "email", "role", "prefix", "created_at", "expires_at"], as_json)


@invitations.command("revoke")
def invitations_revoke(invitation_id: str) -> None:
    """Revoke a pending invitation by id."""
    client = ApiClient.from_config()
    client.delete(_workspace_path(client, f"invitations/{seg(invitation_id)}"))
    done(f"Revoked invitation {invitation_id}.")


def _token_of(token_or_link: str) -> str:
    """The secret, given alone or as the invitation link."""
    return token_or_link.rsplit("#", 1)[-1].rsplit("/", 1)[-1].strip()


def accept(
    token: Annotated[str, typer.Argument(help="The invitation's token or link.")],
    url: Annotated[str | None, typer.Option(help="API address, when not logged in.")] = None,
) -> None:
    """Accept an invitation: as the account you are logged in as, or (not logged in) as a new
    account whose password you choose now; then you are logged in to that workspace."""
    body: dict[str, Any] = {"token": _token_of(token)}
    config = CliConfig.load()
    if config.token and not url:
        joined = ApiClient.from_config(config).post("/invitations/accept", body)
    else:
        url = url or config.url or DEFAULT_URL
        body["password"] = read_new_password()
        joined = ApiClient(url).post("/invitations/accept", body)
        login_with_password(url, joined["email"], body["password"], joined["workspace_id"])
    done(f"You are now {joined['role']} of {joined['workspace_name']} as {joined['email']}.")


@members.command("list")
def members_list(as_json: JsonFlag = False) -> None:
    """List the members of this workspace."""
    client = ApiClient.from_config()
    show(client.get(_workspace_path(client, "members")),
         ["user_id", "email", "role", "created_at"], as_json)


@members.command("remove")
def members_remove(
    member: Annotated[str, typer.Argument(help="The member's email or user id.")],
) -> None:
    """Remove a member from this workspace (yourself too: that is how you leave)."""
    client = ApiClient.from_config()
    path = _workspace_path(client, "members")
    rows = client.get(path)
    match = next((m for m in rows if member.strip().lower() in (m["email"], m["user_id"])), None)
    if match is None:
        raise CliError(f"no member {member!r} here; see `dockyard members list`")
    client.delete(f"{path}/{seg(match['user_id'])}")
    done(f"Removed {match['email']}.")


def passwd() -> None:
    """Change your password; every other login session and API token of yours ends."""
    old = read_password() if not sys.stdin.isatty() else str(
        typer.prompt("Current password", hide_input=True))
    body = {"old_password": old, "new_password": read_new_password()}
    ended = ApiClient.from_config().post("/auth/password", body)
    done(f"Password changed; ended {ended['sessions_ended']} other session(s) and "
         f"{ended['tokens_ended']} API token(s).")


@sessions.command("list")
def sessions_list(as_json: JsonFlag = False) -> None:
    """List your live login sessions."""
    rows = ApiClient.from_config().get("/auth/sessions")
    show(rows, ["id", "created_at", "expires_at", "last_seen_at", "user_agent"], as_json)


@sessions.command("revoke")
def sessions_revoke(session_id: str) -> None:
    """End one of your login sessions."""
    ApiClient.from_config().delete(f"/auth/sessions/{seg(session_id)}")
    done(f"Ended session {session_id}.")


@account.command("delete")
def account_delete(
    email: Annotated[str, typer.Option(help="Your account's email.", prompt=True)],
    url: Annotated[str | None, typer.Option(help="API address.")] = None,
) -> None:
    """Delete your account (it must be in no workspace); asks for its password."""
    body = {"email": email, "password": read_password()}
    ApiClient(url or CliConfig.load().url or DEFAULT_URL).request(
        "DELETE", "/auth/account", json=body)
    done(f"Deleted the account {email}.")
