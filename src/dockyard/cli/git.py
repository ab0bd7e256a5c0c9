"""`dockyard git remote|credential`: a service's git remote, and git's credential helper that
answers with the CLI's own login (so no token is written into a repository)."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from dockyard.agent import process
from dockyard.cli.client import DEFAULT_URL, ApiClient, CliError, seg
from dockyard.cli.config import CliConfig
from dockyard.cli.output import done
from dockyard.cli.resources import ProjectOpt, ServiceOpt

app = typer.Typer(help="git push to deploy: a service's remote, and its credentials.",
                  no_args_is_help=True)
USER = "dockyard"  # git needs a user name; the token alone authenticates
RemoteName = Annotated[str, typer.Option("--name", help="The remote's name in this repository.")]


def remote_url(api_url: str, project: str, service: str) -> str:
    return f"{api_url.rstrip('/')}/git/{project}/{service}.git"


def helper_command(program: str) -> str:
    """The credential helper as git's configuration holds it (git appends the action)."""
    return f"{shlex.quote(program)} git credential"


def configure_argvs(name: str, url: str, helper: str, exists: bool) -> list[list[str]]:
    """Add (or point) the remote at `url`, and make the CLI git's only credential helper
    for that URL: the empty value first drops helpers configured elsewhere (one that stores
    credentials on disk would keep the token)."""
    remote = ["git", "remote", "set-url" if exists else "add", name, url]
    key = f"credential.{url}.helper"
    return [remote, ["git", "config", "--replace-all", key, ""],
            ["git", "config", "--add", key, helper]]


def credential_answer(asked: str, api_url: str, token: str) -> str:
    """What `git credential get` hears: the token, for the CLI's own API only."""
    fields = dict(line.split("=", 1) for line in asked.splitlines() if "=" in line)
    wanted = urlsplit(api_url)
    if (fields.get("protocol"), fields.get("host")) != (wanted.scheme, wanted.netloc):
        return ""
    return f"username={USER}\npassword={token}\n"


def _program() -> str:
    own = sys.argv[0]
    return str(Path(own).absolute()) if "/" in own else shutil.which(own) or own


def _in_work_tree() -> bool:
    result = process.run(["git", "rev-parse", "--is-inside-work-tree"])
    return result.ok and result.output.strip() == "true"


@app.command("remote")
def remote(project: ProjectOpt, service: ServiceOpt,
           name: RemoteName = "dockyard") -> None:
    """Print the service's git remote; inside a repository, add it (or update it) as NAME,
    with the CLI's login as its credential. Then: git push NAME main."""
    api = ApiClient.from_config()
    api.get(f"/projects/{seg(project)}/services/{seg(service)}")  # it exists, you may see it
    url = remote_url(api.url, project, service)
    typer.echo(url)
    if not _in_work_tree():
        return
    exists = process.run(["git", "remote", "get-url", name]).ok
    for argv in configure_argvs(name, url, helper_command(_program()), exists):
        process.check(argv)
    done(f"{'Updated' if exists else 'Added'} remote '{name}': git push {name} main")


@app.command("credential", hidden=True)
def credential(action: Annotated[str, typer.Argument(help="get, store or erase")]) -> None:
    """git's credential helper: answers `get` with the CLI's token (never stores one)."""
    asked = sys.stdin.read()
    if action != "get":
        return
    config = CliConfig.load()
    if not config.token:
        raise CliError("not logged in: run `dockyard login` (or set DOCKYARD_TOKEN)")
    typer.echo(credential_answer(asked, config.url or DEFAULT_URL, config.token), nl=False)
