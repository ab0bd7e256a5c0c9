"""`dockyard git link|unlink|show|rotate-secret|deliveries`: a service linked to a forge
repository, whose signed webhooks deploy pushes to its branch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard.cli.client import ApiClient, CliError, seg
from dockyard.cli.output import JsonFlag, done, show, show_one
from dockyard.cli.resources import ProjectOpt, ServiceOpt

DELIVERY_COLUMNS = ["created_at", "provider", "event", "ref", "commit", "outcome", "detail"]
RepoOpt = Annotated[str, typer.Option("--repo", help="The repository's clone URL.")]
BranchOpt = Annotated[str, typer.Option("--branch", help="The branch whose pushes deploy.")]
PreviewsFlag = Annotated[bool, typer.Option(
    "--previews/--no-previews", help="Deploy each pull request to its own preview.")]
PreviewDnsOpt = Annotated[str | None, typer.Option(
    "--preview-dns", help="A Cloudflare credential for the previews' DNS records.")]
TokenFileOpt = Annotated[Path | None, typer.Option(
    "--token-file", help="A file holding an HTTPS access token ('user:token' or the token).",
    exists=True, dir_okay=False, readable=True)]
KeyFileOpt = Annotated[Path | None, typer.Option(
    "--deploy-key-file", help="A file holding an SSH deploy key's private key.",
    exists=True, dir_okay=False, readable=True)]


def _path(project: str, service: str) -> str:
    return f"/projects/{seg(project)}/services/{seg(service)}/repo-link"


def link_body(repo: str, branch: str, previews: bool, preview_dns: str | None,
              token_file: Path | None, key_file: Path | None) -> dict[str, Any]:
    if token_file and key_file:
        raise CliError("give --token-file or --deploy-key-file, not both")
    return {"repo_url": repo, "branch": branch, "previews": previews,
            "preview_dns_credential": preview_dns,
            "token": token_file.read_text().strip() if token_file else None,
            "deploy_key": key_file.read_text() if key_file else None}


def _print_secret(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        show_one(found, True)
        return
    done(f"Linked {found['project']}/{found['service']} to {found['repo_url']} "
         f"(branch {found['branch']}).")
    _print_removed(found["previews_removed"])
    done("Add a webhook to the repository (content type application/json, push and pull "
         "request events) with:")
    for provider, url in found["webhook_urls"].items():
        done(f"  {provider:<10} {url}")
    done(f"  secret     {found['secret']}")
    done("The secret is shown only now; `dockyard git rotate-secret` makes a new one.")


def link(project: ProjectOpt, service: ServiceOpt, repo: RepoOpt, branch: BranchOpt = "main",
         previews: PreviewsFlag = False, preview_dns: PreviewDnsOpt = None,
         token_file: TokenFileOpt = None, deploy_key_file: KeyFileOpt = None,
         as_json: JsonFlag = False) -> None:
    """Link a service to a repository: pushes to BRANCH deploy (prints the webhook secret)."""
    body = link_body(repo, branch, previews, preview_dns, token_file, deploy_key_file)
    found = ApiClient.from_config().request("PUT", _path(project, service), json=body)
    _print_secret(found, as_json)


def unlink(project: ProjectOpt, service: ServiceOpt) -> None:
    """Unlink a service from its repository (its webhooks then get 404; its previews are
    taken down)."""
    found = ApiClient.from_config().delete(_path(project, service))
    done(f"Unlinked {project}/{service}.")
    _print_removed(found["previews_removed"])


def _print_removed(names: list[str]) -> None:
    if names:
        done(f"Removed {len(names)} preview(s): {', '.join(names)}.")


def show_link(project: ProjectOpt, service: ServiceOpt, as_json: JsonFlag = False) -> None:
    """A service's repository link (never its secret or credential)."""
    show_one(ApiClient.from_config().get(_path(project, service)), as_json)


def rotate_secret(project: ProjectOpt, service: ServiceOpt, as_json: JsonFlag = False) -> None:
    """Replace the webhook secret: paste the new one into the forge."""
    found = ApiClient.from_config().post(f"{_path(project, service)}/rotate-secret", None)
    _print_secret(found, as_json)


def deliveries(project: ProjectOpt, service: ServiceOpt, as_json: JsonFlag = False) -> None:
    """The webhook deliveries received, newest first, with what each did."""
    rows = ApiClient.from_config().get(f"{_path(project, service)}/deliveries")
    show(rows, DELIVERY_COLUMNS, as_json)


def register(git: typer.Typer) -> None:
    """Add the repository-link commands to the `git` group."""
    git.command("link")(link)
    git.command("unlink")(unlink)
    git.command("show")(show_link)
    git.command("rotate-secret")(rotate_secret)
    git.command("deliveries")(deliveries)
