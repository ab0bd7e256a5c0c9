"""`dockyard autoscale set|show|off|decisions`: a service's web replicas between bounds,
toward a target per replica."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import JsonFlag, done, show, show_one
from dockyard.cli.resources import ProjectOpt, ServiceOpt

DECISION_COLUMNS = ["at", "from_replicas", "to_replicas", "reason", "outcome"]
group = typer.Typer(help="Auto-scale a service's web replicas within bounds.",
                    no_args_is_help=True)


def _path(project: str, service: str) -> str:
    return f"/projects/{seg(project)}/services/{seg(service)}/autoscale"


@group.command("set")
def set_policy(
    project: ProjectOpt, service: ServiceOpt,
    minimum: Annotated[int, typer.Option("--min", help="Fewest web replicas per server.")],
    maximum: Annotated[int, typer.Option("--max", help="Most web replicas per server.")],
    target_rps: Annotated[float | None, typer.Option(
        "--target-rps", help="Requests per second one replica should take.")] = None,
    target_cpu: Annotated[float | None, typer.Option(
        "--target-cpu", help="CPU percent (of one CPU) one replica should use.")] = None,
    cooldown: Annotated[int, typer.Option(
        "--cooldown", help="Seconds after a change before scaling in (out waits a quarter).")
    ] = 60,
    as_json: JsonFlag = False) -> None:
    """Set (or replace) the policy; the autoscaler acts as you."""
    body = {"min": minimum, "max": maximum, "target_rps": target_rps, "target_cpu": target_cpu,
            "cooldown_seconds": cooldown}
    found = ApiClient.from_config().request("PUT", _path(project, service), json=body)
    if as_json:
        show_one(found, True)
        return
    done(f"Auto-scaling {project}/{service} web: {found['min']}..{found['max']} replicas per "
         f"server, {_target(found)}, cool-down {found['cooldown_seconds']} s.")


def _target(policy: dict[str, float | None]) -> str:
    if policy["target_rps"] is not None:
        return f"target {policy['target_rps']:g} req/s per replica"
    return f"target {policy['target_cpu']:g}% CPU per replica"


@group.command("show")
def show_policy(project: ProjectOpt, service: ServiceOpt, as_json: JsonFlag = False) -> None:
    """The service's policy."""
    show_one(ApiClient.from_config().get(_path(project, service)), as_json)


@group.command("off")
def off(project: ProjectOpt, service: ServiceOpt) -> None:
    """Stop auto-scaling; the replicas stay as they are."""
    ApiClient.from_config().delete(_path(project, service))
    done(f"Auto-scaling of {project}/{service} is off; its replicas stay as they are.")


@group.command("decisions")
def decisions(project: ProjectOpt, service: ServiceOpt,
              limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
              as_json: JsonFlag = False) -> None:
    """The autoscaler's latest decisions, newest first: why, and what came of each."""
    rows = ApiClient.from_config().get(f"{_path(project, service)}/decisions", limit=limit)
    show(rows, DECISION_COLUMNS, as_json)


def register(app: typer.Typer) -> None:
    """Add `dockyard autoscale` to the CLI."""
    app.add_typer(group, name="autoscale", rich_help_panel="Deploy")
