"""`dockyard backups create|list|restore|delete|schedule -p PROJECT SERVICE`: backups of a
stateful service, each one API call."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import JsonFlag, done, show, show_one
from dockyard.cli.resources import ProjectOpt

app = typer.Typer(help="Backups of a Postgres or Redis service: taken, verified, restored.",
                  no_args_is_help=True)
LIST_COLUMNS = ["id", "started_at", "trigger", "status", "size", "duration", "verification"]
SLOW = httpx.Timeout(30.0, read=None)  # a dump, its verification or a restore takes a while
ServiceArg = Annotated[str, typer.Argument(help="The stateful service.")]
BackupArg = Annotated[str, typer.Argument(help="The backup's id (or its first 8 digits).")]
IntoOpt = Annotated[str | None, typer.Option(
    "--into", help="Name of the new service (default: SERVICE-restored-YYYYMMDD).")]
OverwriteFlag = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the service's own data (after a safety backup).")]
ConfirmOpt = Annotated[str | None, typer.Option(
    "--confirm", help="The service's name again, to overwrite without being asked.")]
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _path(project: str, service: str, backup: str = "") -> str:
    base = f"/projects/{seg(project)}/stateful/{seg(service)}/backups"
    return f"{base}/{seg(backup)}" if backup else base


def size_text(size: int) -> str:
    """`512 B`, `1.5 MiB`: bytes as a person reads them."""
    amount, unit = float(size), 0
    while amount >= 1024 and unit < len(_UNITS) - 1:
        amount, unit = amount / 1024, unit + 1
    return f"{int(amount)} B" if unit == 0 else f"{amount:.1f} {_UNITS[unit]}"


def backup_row(backup: dict[str, Any]) -> dict[str, Any]:
    seconds = backup.get("duration_seconds")
    return {**backup, "size": size_text(backup["size_bytes"]),
            "duration": "-" if seconds is None else f"{seconds:.1f}s",
            "verification": backup["verification"] or backup["error"]}


@app.command("create")
def create(service: ServiceArg, project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Back up SERVICE now: dumped, stored, then verified by restoring it in a scratch
    container; it counts as good only once verified."""
    found = ApiClient.from_config().request("POST", _path(project, service), json={},
                                            timeout=SLOW)
    if as_json:
        show_one(found, as_json)
        return
    done(f"Backup {found['id'][:8]} of {project}/{service} is good "
         f"({size_text(found['size_bytes'])}): {found['verification']}")


@app.command("list")
def list_backups(service: ServiceArg, project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Backups of SERVICE, newest first: size, duration and what verification found."""
    listing = ApiClient.from_config().get(_path(project, service))
    show(listing if as_json else [backup_row(b) for b in listing], LIST_COLUMNS, as_json)


@app.command("restore")
def restore(service: ServiceArg, backup: BackupArg, project: ProjectOpt, into: IntoOpt = None,
            overwrite: OverwriteFlag = False, confirm: ConfirmOpt = None,
            as_json: JsonFlag = False) -> None:
    """Restore a backup into a new service (the original is never touched), or with
    --overwrite over SERVICE itself, which asks for its name again."""
    if overwrite and confirm is None:
        confirm = typer.prompt(f"This replaces the data of {project}/{service} (a safety "
                               "backup is taken first). Type its name to confirm")
    body = {"into": into, "overwrite": overwrite, "confirm": confirm}
    found = ApiClient.from_config().request("POST", f"{_path(project, service, backup)}/restore",
                                            json=body, timeout=SLOW)
    if as_json:
        show_one(found, as_json)
    elif found["overwritten"]:
        done(f"Restored backup {backup} over {project}/{service}; its state before is "
             f"backup {found['safety_backup'][:8]}.")
    else:
        done(f"Restored backup {backup} into the new service {project}/{found['service']}.")


@app.command("delete")
def delete(service: ServiceArg, backup: BackupArg, project: ProjectOpt) -> None:
    """Delete a backup and its stored file."""
    ApiClient.from_config().delete(_path(project, service, backup))
    done(f"Deleted backup {backup} of {project}/{service}.")


CronOpt = Annotated[str | None, typer.Option(
    "--cron", help="Five cron fields in UTC, like '0 3 * * *' (daily at 03:00).")]
KeepOpt = Annotated[int | None, typer.Option(
    "--keep", min=1, help="How many good backups to keep (final and safety ones stay).")]


@app.command("schedule")
def schedule(service: ServiceArg, project: ProjectOpt, cron: CronOpt = None,
             keep: KeepOpt = None, as_json: JsonFlag = False) -> None:
    """Show when SERVICE is backed up on schedule and how many backups are kept, or change
    either with --cron and --keep."""
    client, path = ApiClient.from_config(), f"{_path(project, service)}/schedule"
    if cron is None and keep is None:
        found = client.get(path)
    else:
        body = {"schedule": cron, "retention": keep}
        found = client.request("PUT", path, json={k: v for k, v in body.items() if v is not None})
    if as_json:
        show_one(found, as_json)
        return
    done(f"{project}/{service} is backed up at '{found['schedule']}' (cron, UTC), next at "
         f"{found['next_run_at']}; the newest {found['retention']} good backups are kept.")
