"""`dockyard previews list|limit`: the preview environments of a project's pull requests."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import JsonFlag, done, show
from dockyard.cli.resources import ProjectOpt

app = typer.Typer(help="Preview environments: one copy of an app per open pull request.",
                  no_args_is_help=True)
COLUMNS = ["pull_request", "service", "host", "commit", "status"]
LimitArg = Annotated[int, typer.Argument(help="How many at once, 0..50 (0: none).")]


@app.command("list")
def list_previews(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """The project's previews: pull request, service, host, commit, status."""
    rows = ApiClient.from_config().get(f"/projects/{seg(project)}/previews")
    shown = rows if as_json else [{**r, "commit": r["commit"][:12]} for r in rows]
    show(shown, COLUMNS, as_json)


@app.command("limit")
def limit(project: ProjectOpt, count: LimitArg) -> None:
    """Set how many previews the project may run at once."""
    found = ApiClient.from_config().patch(f"/projects/{seg(project)}",
                                          {"preview_limit": count})
    done(f"Project {project} may run {found['preview_limit']} preview(s) at once.")
