"""`dockyard services create --kind postgres|redis`, `services info|start|stop|restart` and
`services delete` of a stateful service: each one API call."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from dockyard.cli.client import ApiClient, seg
from dockyard.cli.output import done, show_one

STATEFUL_KINDS = ("postgres", "redis")
# Placing one may import its image onto the server and waits until it answers: minutes on a
# slow server, not the 30 s of a plain call.
SLOW = httpx.Timeout(30.0, read=600.0)
ServerOpt = Annotated[str | None, typer.Option(
    "--server", help="Server to run it on (default: the least loaded).")]
VersionOpt = Annotated[str | None, typer.Option(
    "--version", help="Run the official image of this version (the server must pull it).")]
MemoryOpt = Annotated[int | None, typer.Option("--memory", help="Memory limit in MiB.")]
RedeployFlag = Annotated[bool, typer.Option(
    "--redeploy", help="Roll the project's apps out again now, so their variables follow.")]


def _path(project: str, name: str = "") -> str:
    base = f"/projects/{seg(project)}/stateful"
    return f"{base}/{seg(name)}" if name else base


def create_stateful(name: str, project: str, kind: str, *, server: str | None,
                    version: str | None, image: str | None, memory: int | None,
                    redeploy: bool, as_json: bool) -> None:
    body = {"name": name, "kind": kind, "server": server, "version": version, "image": image,
            "memory_mb": memory, "redeploy": redeploy}
    found = ApiClient.from_config().request("POST", _path(project), json=body, timeout=SLOW)
    show_one({k: v for k, v in found.items() if k != "redeploys"}, as_json)
    if not as_json:
        _tell_apps(project, redeploy, found)


def show_info(name: str, project: str, show_secret: bool, as_json: bool) -> None:
    found = ApiClient.from_config().get(_path(project, name), show_secret=show_secret or None)
    show_one(found, as_json)


def act(name: str, project: str, action: str, as_json: bool) -> None:
    found = ApiClient.from_config().request("POST", f"{_path(project, name)}/actions",
                                            json={"action": action}, timeout=SLOW)
    show_one(found, as_json) if as_json else done(
        f"{project}/{name}: {action} done; its container is {found['container_state']}")


def rekey(name: str, project: str, redeploy: bool, as_json: bool) -> None:
    found = ApiClient.from_config().request(
        "POST", f"{_path(project, name)}/rekey", params={"redeploy": str(redeploy).lower()},
        timeout=SLOW)
    if as_json:
        show_one(found, as_json)
        return
    done(f"{project}/{name} has a new password; its container is {found['container_state']}")
    _tell_apps(project, redeploy, found)


def _tell_apps(project: str, redeploy: bool, found: dict[str, Any]) -> None:
    if not redeploy:
        done(f"Apps of {project} get {found['variable']} at their next rollout; give it to "
             f"them now: dockyard services redeploy -p {project}")
        return
    from dockyard.cli.deploy import redeploy_lines  # it imports resources, which imports us
    for line in redeploy_lines(project, found["redeploys"]):
        done(line)


def delete_stateful(name: str, project: str, confirm: str | None, redeploy: bool) -> None:
    if confirm is None:
        confirm = typer.prompt(f"Deleting {project}/{name} removes its data (after a final "
                               "backup). Type its name to confirm")
    api = ApiClient.from_config()
    api.request("DELETE", _path(project, name), params={"confirm": confirm})
    done(f"Deleted {project}/{name} (a final backup was taken first).")
    if not redeploy:
        done(f"Apps of {project} keep its variable until their next rollout; now: dockyard "
             f"services redeploy -p {project}")
        return
    from dockyard.cli.deploy import redeploy_lines  # it imports resources, which imports us
    for line in redeploy_lines(project, api.post(f"/projects/{seg(project)}/redeploy", {})):
        done(line)


def is_stateful(project: str, name: str) -> bool:
    """Whether `project/name` is a stateful service (so its commands differ from an app's)."""
    found: dict[str, Any] = ApiClient.from_config().get(
        f"/projects/{seg(project)}/services/{seg(name)}")
    return found.get("kind") in STATEFUL_KINDS
