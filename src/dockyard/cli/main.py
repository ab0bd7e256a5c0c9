"""The `dockyard` command."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from dockyard import __version__
from dockyard.cli import (
    account,
    alerts,
    autoscale,
    backups,
    cluster,
    deploy,
    domains,
    drain,
    git,
    images,
    install,
    logs,
    metrics,
    people,
    previews,
    processes,
    provision,
    prune,
    repo_links,
    resources,
    server,
    upgrade,
    worker,
)
from dockyard.cli.client import CliError
from dockyard.cli.output import errors
from dockyard.kernel.errors import DockyardError

app = typer.Typer(
    help="Dockyard: deploy code, git repositories or images to your own servers.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dockyard {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Dockyard command line."""


for command in (server.up, server.down, server.serve, server.migrate, server.openapi,
                worker.worker, worker.relay, install.install, install.uninstall):
    app.command(rich_help_panel="Run Dockyard here")(command)
for command in (account.login, account.logout, account.whoami, account.history):
    app.command(rich_help_panel="Account")(command)
for people_command in (people.invite, people.accept, people.passwd):
    app.command(rich_help_panel="Account")(people_command)
for deploy_command in (deploy.deploy, deploy.rollback, deploy.releases):
    app.command(rich_help_panel="Deploy")(deploy_command)
app.command("open", rich_help_panel="Deploy")(resources.open_service)
for process_command in (processes.ps, processes.restart, processes.scale):
    app.command(rich_help_panel="Deploy")(process_command)
app.command("run", rich_help_panel="Deploy")(processes.run_command)
app.command("logs", rich_help_panel="Deploy")(logs.logs)
for name, group in (("deployments", deploy.deployments), ("deploy-configs", deploy.deploy_configs)):
    app.add_typer(group, name=name, rich_help_panel="Deploy")
resources.servers.command("drain")(drain.servers_drain)
resources.servers.command("undrain")(drain.servers_undrain)
provision.register(resources.servers, app)
upgrade.register(resources.servers)
prune.register(resources.servers)
repo_links.register(git.app)
for issue15 in (metrics, alerts, autoscale):
    issue15.register(app)
for name, group in (
    ("projects", resources.projects), ("services", resources.services), ("env", resources.env),
    ("servers", resources.servers), ("credentials", resources.credentials),
    ("workspaces", account.workspaces), ("tokens", account.tokens),
    ("invitations", people.invitations), ("members", people.members),
    ("sessions", people.sessions), ("account", people.account),
    ("cluster", cluster.app), ("images", images.app), ("backups", backups.app),
    ("domains", domains.app), ("git", git.app), ("previews", previews.app),
):
    app.add_typer(group, name=name)


def run() -> None:
    """Entry point: failures print one clear line and exit non-zero, never a traceback."""
    try:
        app()
    except (CliError, DockyardError, RuntimeError) as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get("DOCKYARD_DEBUG"):
            raise
        errors.print(f"error: unexpected {type(exc).__name__}: {exc} "
                     "(set DOCKYARD_DEBUG=1 to see where)", markup=False, highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
